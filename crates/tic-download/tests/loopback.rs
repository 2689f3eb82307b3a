//! tic-download against a loopback HTTP server started in the test (nothing leaves the machine):
//! generated images and every fault of issue 26 — 404, a body that stalls, HTML served as
//! `image/jpeg`, a decompression bomb, a redirect loop, `X-Robots-Tag` opt-outs — checked per
//! row (status and img2dataset's message), in the tars, and across a `kill -9` and a rerun.

use arrow_array::builder::{Float64Builder, ListBuilder};
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_tic-download");

fn png(w: u32, h: u32, seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 3) as u8 ^ seed,
            (y * 5) as u8,
            ((x + y) as u8).wrapping_mul(seed),
        ])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A PNG whose header claims 40000 × 40000 pixels (1.6 gigapixels) over a 1-pixel body.
fn bomb() -> Vec<u8> {
    let mut b = png(1, 1, 1);
    // IHDR data starts at byte 16 (8 signature + 4 length + 4 type).
    b[16..20].copy_from_slice(&40000u32.to_be_bytes());
    b[20..24].copy_from_slice(&40000u32.to_be_bytes());
    let crc = crc32fast::hash(&b[12..29]);
    b[29..33].copy_from_slice(&crc.to_be_bytes());
    b
}

fn response(status: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        r += &format!("{k}: {v}\r\n");
    }
    r += "\r\n";
    let mut r = r.into_bytes();
    r.extend_from_slice(body);
    r
}

async fn serve(mut sock: tokio::net::TcpStream) {
    loop {
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => req.extend_from_slice(&buf[..n]),
            }
        }
        let line = String::from_utf8_lossy(&req)
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        let path = line.split(' ').nth(1).unwrap_or("/").to_string();
        let jpeg = || ("Content-Type", "image/jpeg".to_string());
        let out = match path.as_str() {
            p if p.starts_with("/img/") => {
                let n: u8 = p[5..].parse().unwrap_or(1);
                response(
                    "200 OK",
                    &[("Content-Type", "image/png".into())],
                    &png(600 + n as u32, 300, n),
                )
            }
            "/small" => response("200 OK", &[], &png(40, 30, 9)),
            "/404" => response("404 Not Found", &[], b"nope"),
            "/html" => response(
                "200 OK",
                &[jpeg()],
                b"<html><body>not an image</body></html>",
            ),
            "/bomb" => response("200 OK", &[], &bomb()),
            "/loop" => response("302 Found", &[("Location", "/loop".into())], b""),
            "/noai" => response(
                "200 OK",
                &[("X-Robots-Tag", "noindex, nofollow".into())],
                &png(50, 50, 3),
            ),
            "/otherbot" => response(
                "200 OK",
                &[("X-Robots-Tag", "otherbot: noai".into())],
                &png(50, 50, 4),
            ),
            "/stall" => {
                let mut head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec();
                head.extend_from_slice(&[0xFF; 1000]);
                let _ = sock.write_all(&head).await;
                tokio::time::sleep(Duration::from_secs(60)).await;
                return;
            }
            _ => response("500 Internal Server Error", &[], b""),
        };
        if sock.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// Starts the server on a loopback port (its own thread and runtime); returns the base URL.
fn start_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let (s, _) = l.accept().await.unwrap();
                tokio::spawn(serve(s));
            }
        });
    });
    format!("http://{addr}")
}

/// (uid, path, boxes) rows of the metadata.
fn rows() -> Vec<(String, &'static str, Vec<[f64; 4]>)> {
    let paths = [
        "/img/1",
        "/404",
        "/img/2",
        "/html",
        "/bomb",
        "/loop",
        "/noai",
        "/otherbot",
        "/img/3",
        "/stall",
        "/small",
        "/img/4",
    ];
    paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let boxes = if i == 0 {
                vec![[0.1, 0.1, 0.4, 0.5]]
            } else {
                vec![]
            };
            (format!("{:032x}", i as u128 + 1), *p, boxes)
        })
        .collect()
}

fn write_metadata(dir: &Path, base: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let rows = rows();
    let mut boxes = ListBuilder::new(ListBuilder::new(Float64Builder::new()));
    for (_, _, bs) in &rows {
        for b in bs {
            boxes.values().values().append_slice(b);
            boxes.values().append(true);
        }
        boxes.append(true);
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(
            rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            rows.iter()
                .map(|r| format!("{base}{}", r.1))
                .collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            rows.iter()
                .map(|r| format!("caption of {}", r.1))
                .collect::<Vec<_>>(),
        )),
        Arc::new(boxes.finish()),
    ];
    let list = |inner: DataType| DataType::List(Arc::new(Field::new("item", inner, true)));
    let schema = Schema::new(vec![
        Field::new("uid", DataType::Utf8, true),
        Field::new("url", DataType::Utf8, true),
        Field::new("text", DataType::Utf8, true),
        Field::new("face_bboxes", list(list(DataType::Float64)), true),
    ]);
    let batch = RecordBatch::try_new(Arc::new(schema), cols).unwrap();
    let f = std::fs::File::create(dir.join("part0.parquet")).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// uid → (status, error_message) over every shard parquet of `shards`.
fn statuses(shards: &Path) -> BTreeMap<String, (String, Option<String>)> {
    use arrow_array::cast::AsArray;
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(shards).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "parquet") {
            let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                std::fs::File::open(&p).unwrap(),
            )
            .unwrap()
            .build()
            .unwrap();
            for b in r {
                let b = b.unwrap();
                let col = |n: &str| {
                    b.column(b.schema().index_of(n).unwrap())
                        .as_string::<i32>()
                        .clone()
                };
                let (uid, st, err) = (col("uid"), col("status"), col("error_message"));
                for i in 0..b.num_rows() {
                    let e = (!err.is_null(i)).then(|| err.value(i).to_string());
                    assert!(
                        out.insert(uid.value(i).to_string(), (st.value(i).to_string(), e))
                            .is_none(),
                        "duplicate uid"
                    );
                }
            }
        }
    }
    out
}

/// Sample keys and json members of every tar.
fn tar_samples(shards: &Path) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(shards).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "tar") {
            let mut a = tar::Archive::new(std::fs::File::open(&p).unwrap());
            for m in a.entries().unwrap() {
                let mut m = m.unwrap();
                let name = m.path().unwrap().to_string_lossy().to_string();
                if let Some(key) = name.strip_suffix(".json") {
                    let mut s = String::new();
                    std::io::Read::read_to_string(&mut m, &mut s).unwrap();
                    assert!(out
                        .insert(key.to_string(), serde_json::from_str(&s).unwrap())
                        .is_none());
                }
            }
        }
    }
    out
}

fn args(data: &str) -> Vec<&str> {
    vec![
        "--data_dir",
        data,
        "--timeout",
        "1",
        "--retries",
        "1",
        "--number_sample_per_shard",
        "4",
        "--processes_count",
        "2",
        "--thread_count",
        "4",
        "--max_per_host",
        "4",
        "--quiet",
    ]
}

#[test]
fn every_fault_has_its_status_and_a_kill_resumes() {
    let base = start_server();
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    write_metadata(&full.join("metadata"), &base);
    let out = Command::new(BIN)
        .args(args(full.to_str().unwrap()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st = statuses(&full.join("shards"));
    let uid = |i: usize| format!("{:032x}", i + 1);
    let expect = |i: usize, status: &str, err: Option<&str>| {
        let got = &st[&uid(i)];
        assert_eq!(got.0, status, "row {i}: {got:?}");
        assert_eq!(got.1.as_deref(), err, "row {i}");
    };
    expect(0, "success", None);
    expect(1, "failed_to_download", Some("HTTP Error 404: Not Found"));
    expect(3, "failed_to_resize", Some("Image decoding error"));
    let bomb = &st[&uid(4)];
    assert_eq!(bomb.0, "failed_to_resize");
    assert!(
        bomb.1
            .as_deref()
            .unwrap()
            .starts_with("image too large: 40000x40000"),
        "{bomb:?}"
    );
    expect(5, "failed_to_download", Some("HTTP Error 302: The HTTP server returned a redirect error that would lead to an infinite loop.\nThe last 30x error message was:\nFound"));
    expect(
        6,
        "failed_to_download",
        Some("Use of image disallowed by X-Robots-Tag directive"),
    );
    expect(7, "success", None);
    expect(9, "failed_to_download", Some("timed out"));
    expect(10, "success", None);
    assert_eq!(st.len(), 12);
    // Tars: one sample per success, keys {shard:08}{row:01} (4 rows per shard: oom 1), img2dataset's json fields.
    let samples = tar_samples(&full.join("shards"));
    let ok: Vec<_> = st
        .iter()
        .filter(|(_, v)| v.0 == "success")
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(samples.len(), ok.len());
    let first = samples
        .get("000000000")
        .unwrap_or_else(|| panic!("{:?}", samples.keys()));
    assert_eq!(first["uid"], uid(0));
    assert_eq!(first["width"], 512);
    assert_eq!(first["height"], 256);
    assert_eq!(first["original_width"], 601);
    assert_eq!(
        first["face_bboxes"],
        serde_json::json!([[0.1, 0.1, 0.4, 0.5]])
    );
    assert_eq!(first["exif"], "{}");
    assert_eq!(first["sha256"].as_str().unwrap().len(), 64);
    let small = &samples["000000022"];
    assert_eq!(
        (small["width"].as_u64(), small["height"].as_u64()),
        (Some(40), Some(30))
    );
    let stats: serde_json::Value =
        serde_json::from_slice(&std::fs::read(full.join("shards/00000000_stats.json")).unwrap())
            .unwrap();
    assert_eq!(stats["count"], 4);
    assert_eq!(stats["successes"], 2);
    assert_eq!(stats["failed_to_download"], 1);
    assert_eq!(stats["failed_to_resize"], 1);
    assert_eq!(stats["status_dict"]["success"], 2);

    // Rerun: everything kept.
    let before = std::fs::metadata(full.join("shards/00000001.tar"))
        .unwrap()
        .modified()
        .unwrap();
    let out = Command::new(BIN)
        .args(args(full.to_str().unwrap()))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        std::fs::metadata(full.join("shards/00000001.tar"))
            .unwrap()
            .modified()
            .unwrap(),
        before
    );

    // kill -9 once a shard is finished, rerun, compare with the uninterrupted run.
    let killed = tmp.path().join("killed");
    write_metadata(&killed.join("metadata"), &base);
    let mut child = Command::new(BIN)
        .args(args(killed.to_str().unwrap()))
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let first_stats = |d: &Path| {
        std::fs::read_dir(d.join("shards"))
            .map(|r| {
                r.filter_map(|e| e.ok())
                    .any(|e| e.file_name().to_string_lossy().ends_with("_stats.json"))
            })
            .unwrap_or(false)
    };
    while !first_stats(&killed) && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let out = Command::new(BIN)
        .args(args(killed.to_str().unwrap()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(statuses(&killed.join("shards")), st);
    assert_eq!(
        tar_samples(&killed.join("shards"))
            .keys()
            .collect::<Vec<_>>(),
        samples.keys().collect::<Vec<_>>()
    );
    let leftovers: Vec<_> = std::fs::read_dir(killed.join("shards"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".tic-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn subset_keeps_only_listed_uids_in_full_shards() {
    let base = start_server();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    write_metadata(&data.join("metadata"), &base);
    let keep: Vec<tic_shards::Uid> = [1u128, 3, 8, 11, 12]
        .iter()
        .map(|&u| tic_shards::Uid(u))
        .collect();
    let npy = tmp.path().join("2014.npy");
    std::fs::write(&npy, tic_shards::npy::write_uids(&keep)).unwrap();
    let mut a = args(data.to_str().unwrap());
    a.extend(["--subset", npy.to_str().unwrap()]);
    let out = Command::new(BIN).args(&a).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st = statuses(&data.join("shards"));
    let want: Vec<String> = keep.iter().map(|u| u.to_hex()).collect();
    assert_eq!(st.keys().cloned().collect::<Vec<_>>(), want);
    assert!(st.values().all(|v| v.0 == "success"), "{st:?}");
    // 5 rows, 4 per shard: 00000000 (4) and 00000001 (1).
    assert!(data.join("shards/00000001_stats.json").exists());
    assert!(!data.join("shards/00000002.tar").exists());
}
