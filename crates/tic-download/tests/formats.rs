//! tic-download's `--output_format files`, `parquet` and `dummy` on the loopback server: each
//! resumes after a `kill -9` (the rerun's statuses and samples equal an uninterrupted run's, no
//! temporaries left, a third run keeps everything), `--retry_failed` re-fetches a 503 in each
//! (rows read back from the folder or the table; `dummy` redoes the shard whole), and
//! `tfrecord` is refused with the reason. img2dataset's own output per format is compared in
//! `tests/img2dataset.rs`.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use tic_testkit::files_under;

const BIN: &str = env!("CARGO_BIN_EXE_tic-download");

fn args<'a>(data: &'a str, format: &'a str) -> Vec<&'a str> {
    let mut a = loopback_args(data);
    a.extend(["--output_format", format]);
    a
}

fn rows() -> Vec<Row> {
    let paths = [
        "/img/1", "/404", "/img/2", "/html", "/stall", "/img/3", "/small", "/img/4", "/loop",
    ];
    let mut rows = path_rows(&paths);
    rows[0].2 = vec![[0.1, 0.1, 0.4, 0.5]];
    rows
}

/// Everything a format leaves that must be the same across runs: statuses (from the tables, or
/// the stats' counts for `dummy`), samples, and the file names.
type Output = (
    BTreeMap<String, (String, Option<String>)>,
    BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    Vec<(String, u64)>,
    Vec<String>,
);

fn stats_counts(shards: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for id in 0.. {
        let p = shards.join(format!("{id:08}_stats.json"));
        if !p.exists() {
            break;
        }
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        for k in [
            "count",
            "successes",
            "failed_to_download",
            "failed_to_resize",
        ] {
            out.push((format!("{id}:{k}"), v[k].as_u64().unwrap()));
        }
    }
    out
}

fn output(data: &Path, format: &str) -> Output {
    let shards = data.join("shards");
    let st = match format {
        "dummy" => BTreeMap::new(),
        _ => statuses(&shards),
    };
    let samples = format_samples(&shards, format);
    (st, samples, stats_counts(&shards), files_under(&shards))
}

#[test]
fn files_parquet_and_dummy_resume_after_a_kill() {
    let base = start_server();
    let tmp = tempfile::tempdir().unwrap();
    for format in ["files", "parquet", "dummy"] {
        let full = tmp.path().join(format!("{format}-full"));
        write_rows(&full.join("metadata"), &base, &rows());
        run_ok(BIN, &args(full.to_str().unwrap(), format));
        let want = output(&full, format);
        let (st, samples, counts, names) = &want;
        // 9 rows, 4 per shard: 5 successes (one a small image), 3 shards.
        assert_eq!(
            counts
                .iter()
                .filter(|c| c.0.ends_with(":successes"))
                .map(|c| c.1)
                .sum::<u64>(),
            5
        );
        match format {
            "files" => {
                assert_eq!(st.len(), 9);
                assert_eq!(samples.len(), 5);
                assert!(
                    samples.values().all(|m| m.len() == 3),
                    "{format}: jpg, txt, json"
                );
                assert!(
                    names.contains(&"00000000/000000000.json".to_string()),
                    "{names:?}"
                );
                assert!(names.contains(&"00000002.parquet".to_string()), "{names:?}");
                assert!(!names.iter().any(|n| n.ends_with(".tar")), "{names:?}");
                let meta: serde_json::Value =
                    serde_json::from_slice(&samples["000000000"]["json"]).unwrap();
                assert_eq!(
                    (meta["uid"].as_str(), meta["width"].as_u64()),
                    (Some(&*rows()[0].0), Some(512))
                );
                assert_eq!(samples["000000000"]["txt"], b"caption of /img/1");
            }
            "parquet" => {
                assert_eq!(st.len(), 9);
                assert_eq!(samples.len(), 5);
                let want_names = ["00000000", "00000001", "00000002"]
                    .iter()
                    .flat_map(|i| [format!("{i}.parquet"), format!("{i}_stats.json")])
                    .collect::<Vec<_>>();
                assert_eq!(names, &want_names);
            }
            _ => {
                assert!(samples.is_empty());
                assert_eq!(
                    names,
                    &[
                        "00000000_stats.json",
                        "00000001_stats.json",
                        "00000002_stats.json"
                    ]
                );
            }
        }

        let killed = tmp.path().join(format!("{format}-killed"));
        write_rows(&killed.join("metadata"), &base, &rows());
        kill_after_first_shard(BIN, &args(killed.to_str().unwrap(), format), &killed);
        run_ok(BIN, &args(killed.to_str().unwrap(), format));
        assert_eq!(output(&killed, format), want, "{format}: killed and rerun");

        // A rerun keeps every shard (nothing rewritten).
        let stats0 = killed.join("shards/00000000_stats.json");
        let before = std::fs::metadata(&stats0).unwrap().modified().unwrap();
        run_ok(BIN, &args(killed.to_str().unwrap(), format));
        assert_eq!(
            std::fs::metadata(&stats0).unwrap().modified().unwrap(),
            before,
            "{format}"
        );
        assert_eq!(output(&killed, format), want, "{format}: third run");
    }
}

#[test]
fn retry_failed_in_files_parquet_and_dummy() {
    let base = start_server();
    let tmp = tempfile::tempdir().unwrap();
    for format in ["files", "parquet", "dummy"] {
        let data = tmp.path().join(format);
        let t = data.to_string_lossy().replace('/', "_");
        let (flaky, gone) = (format!("/flaky/a{t}"), format!("/gone/{t}"));
        let paths = ["/img/1", &flaky, &gone, "/img/2", "/img/3", "/html"];
        let rows = path_rows(&paths);
        write_rows(&data.join("metadata"), &base, &rows);
        let d = data.to_str().unwrap();
        run_ok(BIN, &args(d, format));
        let shards = data.join("shards");
        let before = output(&data, format);
        let stats1 = shards.join("00000001_stats.json");
        let shard1 = std::fs::metadata(&stats1).unwrap().modified().unwrap();
        let mut a = args(d, format);
        a.push("--retry_failed");
        run_ok(BIN, &a);
        let after = output(&data, format);
        let h = hits().lock().unwrap().clone();
        // Shard 1 (/img/3, /html) has nothing retryable: kept.
        assert_eq!(
            std::fs::metadata(&stats1).unwrap().modified().unwrap(),
            shard1,
            "{format}"
        );
        let ok = |o: &Output| o.2[1].1 + o.2[5].1;
        assert_eq!(
            (ok(&before), ok(&after)),
            (3, 4),
            "{format}: successes before and after"
        );
        if format == "dummy" {
            // No per-row record: shard 0 is redone whole (the 404 asked again).
            assert_eq!((h[&flaky], h[&gone]), (3, 2), "{format}");
            continue;
        }
        assert_eq!(
            (h[&flaky], h[&gone]),
            (3, 1),
            "{format}: only the 503 asked again"
        );
        let uid = format!("{:032x}", 2);
        assert_eq!(after.0[&uid], ("success".to_string(), None), "{format}");
        let mut want = before.1.clone();
        want.insert("000000001".into(), after.1["000000001"].clone());
        assert_eq!(
            after.1, want,
            "{format}: the kept samples unchanged, the new one added"
        );
    }
}

#[test]
fn tfrecord_is_refused_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    let out = Command::new(BIN)
        .args(args(d, "tfrecord"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("tfrecord is not supported") && err.contains("TensorFlow"),
        "{err}"
    );
    assert!(
        !tmp.path().join("metadata").exists(),
        "refused before any work"
    );
}

#[test]
fn a_write_failure_in_parquet_stops_and_a_rerun_finishes_identically() {
    let base = start_server();
    let tmp = tempfile::tempdir().unwrap();
    let (clean, full) = (tmp.path().join("clean"), tmp.path().join("full"));
    let rows = path_rows(&["/img/1", "/img/2", "/404", "/img/3", "/img/4", "/small"]);
    write_rows(&clean.join("metadata"), &base, &rows);
    write_rows(&full.join("metadata"), &base, &rows);
    run_ok(BIN, &args(clean.to_str().unwrap(), "parquet"));
    // A 48 KiB file-size limit (writes fail with EFBIG as on a full disk): the images spilled
    // for the first shard's table grow past it, and the run stops.
    let out = run_with_file_limit(BIN, &args(full.to_str().unwrap(), "parquet"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("out of space") && err.contains(".parquet"),
        "{err}"
    );
    run_ok(BIN, &args(full.to_str().unwrap(), "parquet"));
    assert_eq!(output(&full, "parquet"), output(&clean, "parquet"));
}
