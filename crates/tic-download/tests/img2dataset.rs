//! tic-download against img2dataset 1.40.0 itself: the same loopback server and metadata
//! (`common::cmp_rows`: JPEG/PNG/grey/alpha images, face boxes, every fault) that
//! `tests/fixtures/img2dataset/gen_img2dataset.py` ran img2dataset on, with the same settings,
//! for `resize_only_if_bigger` on (INTER_AREA downscales, re-encode only, blur) and off
//! (LANCZOS4 upscales). Checked: the same successful uids, the same status and message per row
//! (one documented exception), the same sizes, `exif` strings (two images carry EXIF blocks)
//! and input digests, and the pixels: every output
//! JPEG byte-identical to img2dataset's (SHA-256 and length against the committed digests).
//! And the other writers (`files`, `parquet`, `dummy`) on the "default" case: the same file
//! listing, table schema (types included), stats keys and counts, and per sample the same
//! `KEY.json` text, caption and image (files) or key, status and image cell (parquet).

mod common;

use common::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Command;
use tic_testkit::files_under;

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

/// tic-download on `cmp_rows` with the generator's settings (plus `extra`) into `data`.
fn run_cmp(data: &Path, base: &str, extra: &[&str]) {
    write_rows(&data.join("metadata"), base, &cmp_rows());
    let mut cmd = Command::new(BIN);
    cmd.args(["--data_dir", data.to_str().unwrap(), "--quiet"]);
    cmd.args(["--image_size", "64", "--number_sample_per_shard", "8"]);
    cmd.args(["--timeout", "2", "--retries", "2", "--processes_count", "1"]);
    cmd.args(["--thread_count", "8"]).args(extra);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run_case(case: &str, expected: &Value, base: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join(case);
    let extra: &[&str] = match case {
        "upscale" => &["--no_resize_only_if_bigger"],
        _ => &[],
    };
    run_cmp(&data, base, extra);
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

/// An arrow type as pyarrow spells it (`str(pa.DataType)`), less list items' field names
/// (`item` or `element`, a writer-version detail), as the generator records it.
fn pyarrow_type(t: &arrow_schema::DataType) -> String {
    use arrow_schema::DataType as D;
    match t {
        D::Utf8 => "string".into(),
        D::LargeUtf8 => "large_string".into(),
        D::Binary => "binary".into(),
        D::Int32 => "int32".into(),
        D::Int64 => "int64".into(),
        D::Float64 => "double".into(),
        D::List(f) => format!("list<{}>", pyarrow_type(f.data_type())),
        other => format!("{other:?}"),
    }
}

fn check_format(format: &str, want: &Value, base: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join(format);
    run_cmp(&data, base, &["--output_format", format]);
    let shards = data.join("shards");
    let names = files_under(&shards);
    let want_names: Vec<String> = serde_json::from_value(want["listing"].clone()).unwrap();
    assert_eq!(names, want_names, "{format}: the files written");
    for (name, w) in want["stats"].as_object().unwrap() {
        let v: Value = serde_json::from_slice(&std::fs::read(shards.join(name)).unwrap()).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            serde_json::json!(keys),
            w["keys"],
            "{format} {name}: stats keys"
        );
        for k in [
            "count",
            "successes",
            "failed_to_download",
            "failed_to_resize",
        ] {
            assert_eq!(v[k], w[k], "{format} {name} {k}");
        }
    }
    if let Some(schema) = want["schema"].as_array() {
        let p = names.iter().find(|n| n.ends_with(".parquet")).unwrap();
        let f = std::fs::File::open(shards.join(p)).unwrap();
        let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f).unwrap();
        let ours: Vec<Value> = r
            .schema()
            .fields()
            .iter()
            .map(|f| serde_json::json!([f.name(), pyarrow_type(f.data_type())]))
            .collect();
        assert_eq!(&ours, schema, "{format}: the table's columns and types");
    }
    let samples = format_samples(&shards, format);
    let uids = statuses(&shards);
    let mut checked = 0;
    for (uid, w) in want["samples"].as_object().unwrap() {
        let key = w["key"].as_str().or(w["json"]["key"].as_str()).unwrap();
        let got = samples.get(key);
        let sha = |ext: &str| {
            got.and_then(|m| m.get(ext))
                .map(|b| hex::encode(Sha256::digest(b)))
        };
        assert_eq!(
            sha("jpg").as_deref(),
            w["jpg_sha256"].as_str(),
            "{format} {uid}: image"
        );
        if format == "files" {
            // The server's address (a new port per run) as BASE, as the generator records it.
            let json = String::from_utf8(got.unwrap()["json"].clone()).unwrap();
            let json = json.replace(base, "BASE");
            let parsed: Value = serde_json::from_str(&json).unwrap();
            assert_eq!(parsed, w["json"], "{format} {uid}: KEY.json");
            let digest = hex::encode(Sha256::digest(json.as_bytes()));
            assert_eq!(
                Some(digest.as_str()),
                w["json_sha256"].as_str(),
                "{format} {uid}: KEY.json text"
            );
            assert_eq!(
                got.unwrap()["txt"],
                w["txt"].as_str().unwrap().as_bytes(),
                "{format} {uid}"
            );
        } else {
            assert_eq!(uids[uid].0, w["status"].as_str().unwrap(), "{format} {uid}");
            let len = got.map(|m| m["jpg"].len() as u64);
            assert_eq!(len, w["jpg_bytes"].as_u64(), "{format} {uid}");
        }
        checked += 1;
    }
    let expect = match format {
        "files" => 11,
        "parquet" => 19,
        _ => 0,
    };
    assert_eq!(checked, expect, "{format}: samples compared");
}

#[test]
fn files_parquet_and_dummy_as_img2dataset_1_40_writes_them() {
    let expected: Value =
        serde_json::from_slice(&std::fs::read(Path::new(FIXTURES).join("expected.json")).unwrap())
            .unwrap();
    let base = start_server();
    for format in ["files", "parquet", "dummy"] {
        check_format(format, &expected["formats"][format], &base);
    }
}
