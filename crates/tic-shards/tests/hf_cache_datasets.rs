//! The `hf_cache` tic-synth writes (`synth::hf_sets` over `hf_cache_layout`) is what Hugging
//! Face `datasets` 2.8 writes and reads:
//! - its Arrow schema (fields, list item names, nullability, the `huggingface` features
//!   metadata) equals that of the files the real `datasets` 2.8.0 wrote for tic-eval's fixtures
//!   (`crates/tic-eval/tests/fixtures/hf/hf_cache_old`, made by `make_hf_fixtures.py`);
//! - the real `datasets` reads each build folder as `load_dataset` reads a cached build
//!   (`fixtures/check_hf_cache.py`: `DatasetInfo.from_directory`, `ArrowReader`, `Dataset`,
//!   every image decoded by PIL) and gets the rows tic-synth made. That half needs a python
//!   with `datasets` (`TIC_DATASETS_PYTHON`, else `/tmp/fairface-venv/bin/python` when it
//!   exists, else `python3`); without one it is skipped with a message.

use arrow_ipc::reader::StreamReader;
use clap::Parser;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use tic_shards::hf_cache_layout::{schema, split_file, HfSet, ImageCell, SetRows, PARQUET_BUILDER};
use tic_shards::synth::hf_sets::{hf_rows, write_hf_sets};
use tic_shards::synth::SynthArgs;

fn args(out: &Path) -> SynthArgs {
    SynthArgs::parse_from([
        "tic-synth",
        "--out",
        out.to_str().unwrap(),
        "--special-samples",
        "12",
        "--image-size",
        "16",
    ])
}

fn file_schema(file: &Path) -> arrow_schema::Schema {
    let f = std::fs::File::open(file).unwrap();
    StreamReader::try_new(f, None)
        .unwrap()
        .schema()
        .as_ref()
        .clone()
}

/// The Arrow file of a 2.8 build folder of `set` under the cache `root`.
fn v28_file(root: &Path, set: HfSet) -> PathBuf {
    let builder = root.join("nlphuji___parquet");
    let config = std::fs::read_dir(&builder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with(&format!("nlphuji--{}-", set.dataset_name()))
        })
        .unwrap_or_else(|| panic!("no {} under {}", set.dataset_name(), builder.display()));
    let build = config.join("0.0.0");
    let hash = std::fs::read_dir(&build).unwrap().next().unwrap().unwrap();
    hash.path().join(split_file(PARQUET_BUILDER))
}

#[test]
fn schema_is_the_one_datasets_2_8_wrote() {
    let fixtures = tic_testkit::fixture_dir("tic-eval").join("hf/hf_cache_old/hf_cache");
    let out = tempfile::tempdir().unwrap();
    let dirs = write_hf_sets(&args(out.path()), out.path()).unwrap();
    for set in HfSet::ALL {
        assert_eq!(
            file_schema(&v28_file(&fixtures, set)),
            schema(set),
            "{set:?}"
        );
    }
    for (dir, set) in dirs.iter().zip([HfSet::Flickr, HfSet::Winogavil]) {
        let ours = file_schema(&dir.join(split_file(PARQUET_BUILDER)));
        assert_eq!(ours, schema(set), "{set:?}");
        assert_eq!(
            v28_file(&out.path().join("hf_cache"), set).parent(),
            Some(dir.as_path())
        );
    }
}

/// The python to read the cache with, if one imports `datasets` (else the reason, printed).
fn datasets_python() -> Option<String> {
    let default = Path::new("/tmp/fairface-venv/bin/python");
    let py = std::env::var("TIC_DATASETS_PYTHON").unwrap_or_else(|_| {
        if default.exists() {
            default.display().to_string()
        } else {
            "python3".into()
        }
    });
    let ok = tic_testkit::process::python_imports(&py, "datasets, PIL");
    if !ok {
        eprintln!(
            "SKIPPED the Hugging Face `datasets` check: {py} cannot import datasets and PIL (set \
             TIC_DATASETS_PYTHON to a python with `pip install datasets==2.8.0`, DataComp's pin)"
        );
    }
    ok.then_some(py)
}

fn image_json(c: &ImageCell, size: u32) -> Value {
    json!({"sha256": hex::encode(Sha256::digest(&c.bytes)), "path": c.path, "size": [size, size]})
}

/// The rows as `check_hf_cache.py` prints them.
fn expected_rows(rows: &SetRows, size: u32) -> Vec<Value> {
    match rows {
        SetRows::Retrieval(r) => r
            .iter()
            .map(|r| {
                json!({"image": image_json(&r.image, size), "caption": r.captions,
                       "sentids": r.sentids, "split": "test", "img_id": r.img_id,
                       "filename": r.filename})
            })
            .collect(),
        SetRows::Winogavil(r) => r
            .iter()
            .map(|w| {
                let images: Vec<Value> = w
                    .candidate_images
                    .iter()
                    .map(|c| image_json(c, size))
                    .collect();
                json!({"candidates": w.candidates, "cue": w.cue,
                       "associations": w.associations, "candidate_images": images,
                       "num_associations": w.associations.len(),
                       "num_candidates": w.candidates.len(), "ID": w.id})
            })
            .collect(),
    }
}

#[test]
fn datasets_reads_the_synthetic_cache() {
    let Some(py) = datasets_python() else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let a = args(out.path());
    let dirs = write_hf_sets(&a, out.path()).unwrap();
    let script = tic_testkit::fixture_dir("tic-shards").join("check_hf_cache.py");
    let res = Command::new(&py).arg(&script).args(&dirs).output().unwrap();
    assert!(
        res.status.success(),
        "{} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&res.stderr)
    );
    let read: Vec<Value> = serde_json::from_slice(&res.stdout).unwrap();
    for ((set, rows), got) in hf_rows(&a).unwrap().iter().zip(&read) {
        eprintln!(
            "{set:?}: datasets {} read {} rows",
            got["datasets"], got["num_rows"]
        );
        assert_eq!(got["num_rows"], json!(rows.len()), "{set:?}");
        let columns: Vec<&String> = got["features"].as_object().unwrap().keys().collect();
        let want: Vec<String> = schema(*set)
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(columns, want.iter().collect::<Vec<_>>(), "{set:?}");
        let want_rows = expected_rows(rows, a.image_size);
        assert_eq!(got["rows"].as_array().unwrap(), &want_rows, "{set:?}");
    }
}
