//! The loopback test server of tic-download's tests (and of `examples/fixture_server.rs`, which
//! the img2dataset comparison's generator runs): generated images and every fault of issue 26 —
//! 404, 5xx, a body that stalls, HTML served as `image/jpeg`, a decompression bomb, a redirect
//! loop, `X-Robots-Tag` opt-outs, flaky paths, a dead port — plus the metadata writer and the
//! readers of a shard folder the tests compare. Nothing here contacts an address off the machine.
#![allow(dead_code)]

use arrow_array::builder::{Float64Builder, ListBuilder};
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A metadata row: uid, path on the server (`DEAD`: [`dead_url`]), face boxes.
pub type Row = (String, String, Vec<[f64; 4]>);

pub fn png(w: u32, h: u32, seed: u8) -> Vec<u8> {
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
pub fn bomb() -> Vec<u8> {
    let mut b = png(1, 1, 1);
    // IHDR data starts at byte 16 (8 signature + 4 length + 4 type).
    b[16..20].copy_from_slice(&40000u32.to_be_bytes());
    b[20..24].copy_from_slice(&40000u32.to_be_bytes());
    let crc = crc32fast::hash(&b[12..29]);
    b[29..33].copy_from_slice(&crc.to_be_bytes());
    b
}

pub fn response(status: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        r += &format!("{k}: {v}\r\n");
    }
    r += "\r\n";
    let mut r = r.into_bytes();
    r.extend_from_slice(body);
    r
}

/// Requests per path so far (the flaky paths fail their first two).
pub fn hits() -> &'static Mutex<BTreeMap<String, u32>> {
    static HITS: OnceLock<Mutex<BTreeMap<String, u32>>> = OnceLock::new();
    HITS.get_or_init(Default::default)
}

/// An 8000 × 6250 (50-megapixel) PNG, made once.
pub fn fifty_mp() -> &'static [u8] {
    static PNG: OnceLock<Vec<u8>> = OnceLock::new();
    PNG.get_or_init(|| {
        let img = image::GrayImage::from_fn(8000, 6250, |x, y| {
            image::Luma([((x / 50 + y / 50) % 2 * 200) as u8])
        });
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    })
}

/// A URL on a loopback port nothing listens on (bound, then closed).
pub fn dead_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/img/1", l.local_addr().unwrap())
    })
}

pub async fn serve(mut sock: tokio::net::TcpStream) {
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
        let hit = {
            let mut h = hits().lock().unwrap();
            let n = h.entry(path.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let out = match path.as_str() {
            p if p.starts_with("/img/") => {
                let n: u8 = p[5..].parse().unwrap_or(1);
                response(
                    "200 OK",
                    &[("Content-Type", "image/png".into())],
                    &png(600 + n as u32, 300, n),
                )
            }
            p if p.starts_with("/flaky/") && hit <= 2 => {
                response("503 Service Unavailable", &[], b"busy")
            }
            p if p.starts_with("/flaky/") => response("200 OK", &[], &png(300, 200, 7)),
            p if p.starts_with("/gone/") => response("404 Not Found", &[], b"gone"),
            "/huge" => response("200 OK", &[], fifty_mp()),
            p if p.starts_with("/bench/") => {
                let i: usize = p[7..].parse().unwrap_or(0);
                response("200 OK", &[jpeg()], &bench_images()[i % BENCH_IMAGES])
            }
            p if p.starts_with("/cmp/") => match cmp_image(&p[5..]) {
                Some(b) => response("200 OK", &[jpeg()], &b),
                None => response("404 Not Found", &[], b"no such image"),
            },
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
pub fn start_server() -> String {
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

/// Writes `rows` (uid, path, boxes) as `dir/part0.parquet`; the path `DEAD` is [`dead_url`].
pub fn write_rows(dir: &Path, base: &str, rows: &[Row]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut boxes = ListBuilder::new(ListBuilder::new(Float64Builder::new()));
    for (_, _, bs) in rows {
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
                .map(|r| match r.1.as_str() {
                    "DEAD" => dead_url().to_string(),
                    p => format!("{base}{p}"),
                })
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
pub fn statuses(shards: &Path) -> BTreeMap<String, (String, Option<String>)> {
    use arrow_array::cast::AsArray;
    let mut out = BTreeMap::new();
    for b in table_batches(shards) {
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
    out
}

/// Metadata rows for `paths` (uids 1, 2, …; no face boxes).
pub fn path_rows(paths: &[&str]) -> Vec<Row> {
    paths
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("{:032x}", i + 1), p.to_string(), vec![]))
        .collect()
}

/// Every record batch of every `*.parquet` table in `shards`.
pub fn table_batches(shards: &Path) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(shards).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "parquet") {
            let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                std::fs::File::open(&p).unwrap(),
            )
            .unwrap()
            .build()
            .unwrap();
            out.extend(r.map(Result::unwrap));
        }
    }
    out
}

/// tic-download's arguments in the loopback tests: a 1 s timeout, one retry, 4 rows per shard,
/// 2 shards and 4 requests at once, no progress bar.
pub fn loopback_args(data: &str) -> Vec<&str> {
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

/// Runs `bin` with `args`; fails the test with its stderr unless it succeeds.
pub fn run_ok(bin: &str, args: &[&str]) {
    let out = std::process::Command::new(bin).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts `bin` with `args` and `kill -9`s it once a first `_stats.json` is in `data/shards`.
pub fn kill_after_first_shard(bin: &str, args: &[&str], data: &Path) {
    let mut child = std::process::Command::new(bin).args(args).spawn().unwrap();
    let t0 = std::time::Instant::now();
    let stats = |d: &Path| {
        std::fs::read_dir(d.join("shards")).is_ok_and(|r| {
            r.filter_map(|e| e.ok())
                .any(|e| e.file_name().to_string_lossy().ends_with("_stats.json"))
        })
    };
    while !stats(data) && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Runs `bin` with `args` under a 48 KiB file-size limit (SIGXFSZ ignored, so writes fail with
/// EFBIG as on a full disk).
pub fn run_with_file_limit(bin: &str, args: &[&str]) -> std::process::Output {
    let script = format!("ulimit -f 48; trap '' XFSZ; exec \"{bin}\" \"$@\"");
    std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .arg("tic-download")
        .args(args)
        .output()
        .unwrap()
}

/// Sample key → the bytes of its `.EXT` member, over every tar of `shards` (keys unique).
pub fn tar_members(shards: &Path, ext: &str) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(shards).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "tar") {
            let mut a = tar::Archive::new(std::fs::File::open(&p).unwrap());
            for m in a.entries().unwrap() {
                let mut m = m.unwrap();
                let name = m.path().unwrap().to_string_lossy().to_string();
                if let Some(key) = name.strip_suffix(&format!(".{ext}")) {
                    let mut b = Vec::new();
                    std::io::Read::read_to_end(&mut m, &mut b).unwrap();
                    assert!(out.insert(key.to_string(), b).is_none(), "duplicate {key}");
                }
            }
        }
    }
    out
}

/// Sample key → its members (extension → bytes) as `--output_format FORMAT` wrote them under
/// `shards`: the tars' members (`webdataset`), the `{id:08d}/` folders' files (`files`), the
/// tables' image column `jpg` (`parquet`, successes only), nothing (`dummy`).
pub fn format_samples(shards: &Path, format: &str) -> BTreeMap<String, BTreeMap<String, Vec<u8>>> {
    use arrow_array::cast::AsArray;
    let mut out: BTreeMap<String, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
    let mut put = |name: &str, data: Vec<u8>| {
        let (key, ext) = name.split_once('.').unwrap();
        let prev = out
            .entry(key.to_string())
            .or_default()
            .insert(ext.to_string(), data);
        assert!(prev.is_none(), "duplicate {name}");
    };
    match format {
        "webdataset" => {
            for ext in ["jpg", "txt", "json"] {
                for (k, b) in tar_members(shards, ext) {
                    put(&format!("{k}.{ext}"), b);
                }
            }
        }
        "files" => {
            for e in std::fs::read_dir(shards).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    for f in std::fs::read_dir(&p).unwrap() {
                        let f = f.unwrap().path();
                        let name = f.file_name().unwrap().to_string_lossy().to_string();
                        put(&name, std::fs::read(&f).unwrap());
                    }
                }
            }
        }
        "parquet" => {
            for b in table_batches(shards) {
                let col = |n: &str| b.column(b.schema().index_of(n).unwrap()).clone();
                let (keys, imgs) = (col("key"), col("jpg"));
                let (keys, imgs) = (keys.as_string::<i32>(), imgs.as_binary::<i32>());
                for i in 0..b.num_rows() {
                    if !imgs.is_null(i) {
                        put(&format!("{}.jpg", keys.value(i)), imgs.value(i).to_vec());
                    }
                }
            }
        }
        _ => {}
    }
    out
}

/// Sample keys and json members of every tar.
pub fn tar_samples(shards: &Path) -> BTreeMap<String, serde_json::Value> {
    tar_members(shards, "json")
        .into_iter()
        .map(|(k, b)| (k, serde_json::from_slice(&b).unwrap()))
        .collect()
}

/// A textured test pattern (smooth waves and a fine ramp: resampling differences show).
fn pattern(w: u32, h: u32, c: u32, x: u32, y: u32) -> u8 {
    let (xf, yf, cf) = (x as f64, y as f64, c as f64);
    let v = 128.0
        + 60.0 * (xf * 0.13 + cf).sin()
        + 50.0 * (yf * 0.07 * (cf + 1.0)).cos()
        + ((x * 7 + y * 13 + c * 5) % 23) as f64
        - 40.0 * ((xf - w as f64 / 2.0).abs() / w as f64);
    let _ = h;
    v.clamp(0.0, 255.0) as u8
}

/// The images of the img2dataset comparison (`/cmp/NAME`): JPEGs (colour, grey) and PNGs
/// (RGB, RGBA) of sizes that take `INTER_AREA`'s integer and fractional paths at
/// `--image_size 64`, no resize, and Lanczos-4 upscaling without `resize_only_if_bigger`.
pub fn cmp_image(name: &str) -> Option<Vec<u8>> {
    match name {
        "exif_camera.jpg" => return Some(with_app1(&cmp_image("area_frac.jpg")?, EXIF_CAMERA)),
        "exif_types.jpg" => return Some(with_app1(&cmp_image("small.jpg")?, EXIF_TYPES)),
        _ => {}
    }
    let (w, h) = match name.split('.').next()? {
        "area_int" => (256, 192),
        "area_frac" => (200, 150),
        "small" => (60, 40),
        "gray" => (160, 120),
        "alpha" => (100, 80),
        "rgb" => (130, 90),
        "blur" => (240, 180),
        "blur_small" => (50, 40),
        _ => return None,
    };
    let rgb = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([0, 1, 2].map(|c| pattern(w, h, c, x, y)))
    });
    let img = match name {
        "gray.jpg" => {
            image::DynamicImage::ImageLuma8(image::DynamicImage::ImageRgb8(rgb).to_luma8())
        }
        "alpha.png" => {
            let a = image::RgbaImage::from_fn(w, h, |x, y| {
                let p = rgb.get_pixel(x, y).0;
                image::Rgba([p[0], p[1], p[2], ((x * 255) / w) as u8])
            });
            image::DynamicImage::ImageRgba8(a)
        }
        _ => image::DynamicImage::ImageRgb8(rgb),
    };
    let mut out = Cursor::new(Vec::new());
    if name.ends_with(".png") {
        img.write_to(&mut out, image::ImageFormat::Png).ok()?;
    } else {
        let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
        img.write_with_encoder(enc).ok()?;
    }
    Some(out.into_inner())
}

/// EXIF-bearing fixtures of `tests/exif.rs` whose `APP1 Exif` segments the comparison's EXIF
/// images carry (a camera-like block with GPS and Orientation 6; every field type, big-endian).
const EXIF_CAMERA: &[u8] = include_bytes!("../fixtures/exif/cases/camera_le.jpg");
const EXIF_TYPES: &[u8] = include_bytes!("../fixtures/exif/cases/types_be.jpg");

/// `jpeg` with the first `APP1` segment of `donor` inserted after its SOI and APP0.
fn with_app1(jpeg: &[u8], donor: &[u8]) -> Vec<u8> {
    let seg_len = |d: &[u8], at: usize| 2 + usize::from(u16::from_be_bytes([d[at + 2], d[at + 3]]));
    let at = donor
        .windows(2)
        .position(|w| w == b"\xff\xe1")
        .expect("an APP1");
    let app1 = &donor[at..at + seg_len(donor, at)];
    let cut = if jpeg[2..4] == *b"\xff\xe0" {
        2 + seg_len(jpeg, 2)
    } else {
        2
    };
    [&jpeg[..cut], app1, &jpeg[cut..]].concat()
}

/// The rows of the img2dataset comparison: every `/cmp/` image (two with face boxes) and
/// every fault, uids `{i+1:032x}`.
pub fn cmp_rows() -> Vec<Row> {
    let paths = [
        "/cmp/area_int.jpg",
        "/cmp/area_frac.jpg",
        "/cmp/small.jpg",
        "/cmp/gray.jpg",
        "/cmp/alpha.png",
        "/cmp/rgb.png",
        "/cmp/blur.jpg",
        "/cmp/blur_small.jpg",
        "/404",
        "/500",
        "/html",
        "/loop",
        "/noai",
        "/otherbot",
        "/stall",
        "DEAD",
        "/bomb",
        "/cmp/exif_camera.jpg",
        "/cmp/exif_types.jpg",
    ];
    paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let boxes = match *p {
                "/cmp/blur.jpg" => vec![[0.2, 0.25, 0.6, 0.7], [0.7, 0.1, 0.9, 0.3]],
                "/cmp/blur_small.jpg" => vec![[0.1, 0.1, 0.5, 0.6]],
                _ => vec![],
            };
            (format!("{:032x}", i + 1), p.to_string(), boxes)
        })
        .collect()
}

/// Distinct images behind the benchmark's URLs.
const BENCH_IMAGES: usize = 16;

/// The benchmark's JPEGs (made once): web-typical sizes from 480 × 360 to 1230 × 922, so every
/// row is decoded, area-downscaled to 512 and re-encoded.
fn bench_images() -> &'static [Vec<u8>] {
    static IMGS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    IMGS.get_or_init(|| {
        (0..BENCH_IMAGES as u32)
            .map(|k| {
                let (w, h) = (480 + 50 * k, 360 + 37 * k);
                let img = image::RgbImage::from_fn(w, h, |x, y| {
                    image::Rgb([0, 1, 2].map(|c| pattern(w, h, c + k, x, y)))
                });
                let mut out = Cursor::new(Vec::new());
                let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
                image::DynamicImage::ImageRgb8(img)
                    .write_with_encoder(enc)
                    .unwrap();
                out.into_inner()
            })
            .collect()
    })
}

/// `n` benchmark rows (`/bench/i`, every third with a face box).
pub fn bench_rows(n: usize) -> Vec<Row> {
    (0..n)
        .map(|i| {
            let boxes = if i % 3 == 0 {
                vec![[0.3, 0.2, 0.6, 0.6]]
            } else {
                vec![]
            };
            (format!("{:032x}", i + 1), format!("/bench/{i}"), boxes)
        })
        .collect()
}
