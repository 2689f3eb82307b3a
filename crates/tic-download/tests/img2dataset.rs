//! tic-download against img2dataset 1.40.0 itself: the same loopback server and metadata
//! (`common::cmp_rows`: JPEG/PNG/grey/alpha images, face boxes, every fault) that
//! `tests/fixtures/img2dataset/gen_img2dataset.py` ran img2dataset on, with the same settings,
//! for `resize_only_if_bigger` on (INTER_AREA downscales, re-encode only, blur) and off
//! (LANCZOS4 upscales). Checked: the same successful uids, the same status and message per row
//! (one documented exception), the same sizes, `exif` strings (two images carry EXIF blocks)
//! and input digests, and the pixels: every output
//! JPEG byte-identical to img2dataset's (SHA-256 and length against the committed digests).

mod common;

use common::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_tic-download");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/img2dataset");

/// The bomb (over OpenCV's 2^30 pixels): img2dataset records OpenCV's exception text (which
/// names the OpenCV build); tic-download its own `image too large: …` message. Same status.
const BOMB_UID: &str = "00000000000000000000000000000011";

/// uid → the parquet row (status, error_message, sizes, sha256) and the output image.
fn read_run(shards: &Path) -> std::collections::BTreeMap<String, (Value, Option<Vec<u8>>)> {
    let rows = statuses(shards);
    let samples = tar_samples(shards);
    let mut images = tar_members(shards, "jpg");
    let by_uid: std::collections::BTreeMap<String, (String, Value)> = samples
        .into_iter()
        .map(|(k, v)| (v["uid"].as_str().unwrap().to_string(), (k, v)))
        .collect();
    rows.into_iter()
        .map(|(uid, (status, err))| {
            let (json, img) = match by_uid.get(&uid) {
                Some((key, v)) => (v.clone(), images.remove(key)),
                None => (Value::Null, None),
            };
            let rec = serde_json::json!({"status": status, "error_message": err, "sample": json});
            (uid, (rec, img))
        })
        .collect()
}

fn run_case(case: &str, expected: &Value, base: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join(case);
    write_rows(&data.join("metadata"), base, &cmp_rows());
    let mut cmd = Command::new(BIN);
    cmd.args(["--data_dir", data.to_str().unwrap(), "--quiet"]);
    cmd.args(["--image_size", "64", "--number_sample_per_shard", "8"]);
    cmd.args(["--timeout", "2", "--retries", "2", "--processes_count", "1"]);
    cmd.args(["--thread_count", "8"]);
    if case == "upscale" {
        cmd.arg("--no_resize_only_if_bigger");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours = read_run(&data.join("shards"));
    let want = expected.as_object().unwrap();
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    let mut images = 0;
    for (uid, w) in want {
        let (got, img) = &ours[uid];
        assert_eq!(got["status"], w["status"], "{case} {uid}");
        if uid != BOMB_UID {
            assert_eq!(got["error_message"], w["error_message"], "{case} {uid}");
        }
        if w["status"] != "success" {
            continue;
        }
        let s = &got["sample"];
        for k in [
            "width",
            "height",
            "original_width",
            "original_height",
            "exif",
            "sha256",
        ] {
            assert_eq!(s[k], w[k], "{case} {uid} {k}");
        }
        let img = img.as_ref().unwrap();
        images += 1;
        assert_eq!(
            (hex::encode(Sha256::digest(img)), img.len() as u64),
            (
                w["jpg_sha256"].as_str().unwrap().to_string(),
                w["jpg_bytes"].as_u64().unwrap()
            ),
            "{case} {uid}: the output JPEG differs from img2dataset's"
        );
    }
    assert_eq!(images, 11, "{case}: all eleven images succeed");
}

#[test]
fn same_statuses_and_identical_jpegs_as_img2dataset_1_40() {
    let expected: Value =
        serde_json::from_slice(&std::fs::read(Path::new(FIXTURES).join("expected.json")).unwrap())
            .unwrap();
    assert_eq!(expected["img2dataset"], "1.40.0");
    let base = start_server();
    for case in ["default", "upscale"] {
        run_case(case, &expected["cases"][case], &base);
    }
}
