//! tic-download against a loopback HTTP server started in the test (nothing leaves the machine):
//! generated images and every fault of issue 26 — 404, a body that stalls, HTML served as
//! `image/jpeg`, a decompression bomb, a redirect loop, `X-Robots-Tag` opt-outs — checked per
//! row (status and img2dataset's message), in the tars, and across a `kill -9` and a rerun;
//! a dead host (a closed port), a 50-megapixel image, `--retry_failed` against a flaky path, and
//! a write failure (a file-size limit: the run stops, a rerun finishes identically).

mod common;

use common::loopback_args as args;
use common::*;
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_tic-download");

/// (uid, path, boxes) rows of the metadata.
fn rows() -> Vec<Row> {
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
        "DEAD",
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
            (format!("{:032x}", i as u128 + 1), p.to_string(), boxes)
        })
        .collect()
}

fn write_metadata(dir: &Path, base: &str) {
    write_rows(dir, base, &rows());
}

#[test]
fn every_fault_has_its_status_and_a_kill_resumes() {
    let base = start_server();
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    write_metadata(&full.join("metadata"), &base);
    run_ok(BIN, &args(full.to_str().unwrap()));
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
    expect(
        12,
        "failed_to_download",
        Some("<urlopen error [Errno 111] Connection refused>"),
    );
    assert_eq!(st.len(), 13);
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
    kill_after_first_shard(BIN, &args(killed.to_str().unwrap()), &killed);
    run_ok(BIN, &args(killed.to_str().unwrap()));
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
    run_ok(BIN, &a);
    let st = statuses(&data.join("shards"));
    let want: Vec<String> = keep.iter().map(|u| u.to_hex()).collect();
    assert_eq!(st.keys().cloned().collect::<Vec<_>>(), want);
    assert!(st.values().all(|v| v.0 == "success"), "{st:?}");
    // 5 rows, 4 per shard: 00000000 (4) and 00000001 (1).
    assert!(data.join("shards/00000001_stats.json").exists());
    assert!(!data.join("shards/00000002.tar").exists());
}

fn mtime(p: &Path) -> std::time::SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

#[test]
fn retry_failed_refetches_only_retryable_rows_of_affected_shards() {
    let base = start_server();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let t = tmp.path().to_string_lossy().replace('/', "_");
    let (flaky_a, flaky_b, gone) = (
        format!("/flaky/a{t}"),
        format!("/flaky/b{t}"),
        format!("/gone/{t}"),
    );
    let paths = [
        "/img/1", &flaky_a, &gone, "/img/2", // shard 0: a 503 (retryable) and a 404 (not)
        "/img/3", "/html", "/img/4", "/small", // shard 1: nothing retryable
        &flaky_b,
    ];
    let rows = path_rows(&paths);
    write_rows(&data.join("metadata"), &base, &rows);
    let d = data.to_str().unwrap();
    run_ok(BIN, &args(d));
    let st = statuses(&data.join("shards"));
    let busy = (
        "failed_to_download".to_string(),
        Some("HTTP Error 503: Service Unavailable".to_string()),
    );
    assert_eq!(st[&format!("{:032x}", 2)], busy);
    assert_eq!(st[&format!("{:032x}", 9)], busy);
    let shard1 = mtime(&data.join("shards/00000001.tar"));

    let mut a = args(d);
    a.push("--retry_failed");
    run_ok(BIN, &a);
    let after = statuses(&data.join("shards"));
    for (uid, before) in &st {
        let want = if before == &busy {
            ("success".to_string(), None)
        } else {
            before.clone()
        };
        assert_eq!(after[uid], want, "{uid}");
    }
    // The 404 was not asked again; the flaky paths once more each (2 tries, then the retry).
    let h = hits().lock().unwrap().clone();
    assert_eq!(h[&gone], 1);
    assert_eq!((h[&flaky_a], h[&flaky_b]), (3, 3));
    // Shard 1 untouched; shard 0 rewritten with its old samples and the new one.
    assert_eq!(mtime(&data.join("shards/00000001.tar")), shard1);
    let samples = tar_samples(&data.join("shards"));
    let keys: Vec<_> = samples.keys().cloned().collect();
    assert_eq!(
        keys,
        [
            "000000000",
            "000000001",
            "000000003",
            "000000010",
            "000000012",
            "000000013",
            "000000020"
        ]
    );
    assert_eq!(samples["000000001"]["status"], "success");
    let stats: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("shards/00000000_stats.json")).unwrap())
            .unwrap();
    assert_eq!(
        (stats["successes"].as_u64(), stats["count"].as_u64()),
        (Some(3), Some(4))
    );
    // Nothing left to retry: a second --retry_failed changes nothing.
    let shard0 = mtime(&data.join("shards/00000000.tar"));
    run_ok(BIN, &a);
    assert_eq!(mtime(&data.join("shards/00000000.tar")), shard0);
}

#[test]
fn a_write_failure_stops_the_run_and_a_rerun_finishes_identically() {
    let base = start_server();
    let tmp = tempfile::tempdir().unwrap();
    let paths = [
        "/img/1", "/img/2", "/404", "/img/3", "/img/4", "/small", "/img/5",
    ];
    let rows = path_rows(&paths);
    let (clean, full) = (tmp.path().join("clean"), tmp.path().join("full"));
    write_rows(&clean.join("metadata"), &base, &rows);
    write_rows(&full.join("metadata"), &base, &rows);
    run_ok(BIN, &args(clean.to_str().unwrap()));
    // A 48 KiB file-size limit (SIGXFSZ ignored, so writes fail with EFBIG as on a full disk):
    // the first tar to grow past it fails, and the run stops.
    let out = run_with_file_limit(BIN, &args(full.to_str().unwrap()));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("out of space") && err.contains(".tar"),
        "{err}"
    );
    run_ok(BIN, &args(full.to_str().unwrap()));
    let (a, b) = (clean.join("shards"), full.join("shards"));
    assert_eq!(statuses(&b), statuses(&a));
    assert_eq!(tar_samples(&b), tar_samples(&a));
}

#[test]
fn a_fifty_megapixel_image_succeeds_as_in_img2dataset_unless_capped() {
    let base = start_server();
    let tmp = tempfile::tempdir().unwrap();
    let rows = vec![(format!("{:032x}", 1), "/huge".to_string(), vec![])];
    for (name, cap) in [("default", None), ("capped", Some("40000000"))] {
        let data = tmp.path().join(name);
        write_rows(&data.join("metadata"), &base, &rows);
        let mut a = args(data.to_str().unwrap());
        if let Some(c) = cap {
            a.extend(["--max_image_pixels", c]);
        }
        run_ok(BIN, &a);
        let st = statuses(&data.join("shards"));
        let got = &st[&rows[0].0];
        match cap {
            None => {
                assert_eq!(got, &("success".to_string(), None));
                let s = &tar_samples(&data.join("shards"))["000000000"];
                assert_eq!(
                    (s["width"].as_u64(), s["height"].as_u64()),
                    (Some(512), Some(400))
                );
                assert_eq!(s["original_width"], 8000);
            }
            Some(_) => {
                assert_eq!(got.0, "failed_to_resize");
                assert_eq!(
                    got.1.as_deref(),
                    Some("image too large: 8000x6250 pixels is over --max_image_pixels 40000000")
                );
            }
        }
    }
}
