//! The `hf_cache` tic-synth writes (`synth::hf_sets` over `hf_cache_layout`) is what Hugging
//! Face `datasets` writes and reads, in both layouts (2.8, DataComp's pin: Flickr and
//! WinoGAViL; current, checked with 5.2: MSCOCO, sharded):
//! - its Arrow schema (fields, list item names, nullability, the `huggingface` features
//!   metadata) equals that of the files the real `datasets` 2.8.0 and 5.2.0 wrote for tic-eval's
//!   fixtures (`crates/tic-eval/tests/fixtures/hf/hf_cache_{old,new}`, made by
//!   `make_hf_fixtures.py`), for every set and both layouts, and its `dataset_info.json` has
//!   the real one's keys, in order, and features;
//! - the real `datasets` reads each build folder as `load_dataset` reads a cached build
//!   (`fixtures/check_hf_cache.py`: `DatasetInfo.from_directory`, `ArrowReader`, `Dataset`,
//!   every image decoded by PIL) and gets the rows tic-synth made. That half needs a python
//!   with `datasets` per layout (see [`datasets_python`]); without one it is skipped with a
//!   message.

use arrow_ipc::reader::StreamReader;
use clap::Parser;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use tic_shards::hf_cache_layout::{
    schema, CacheLayout, HfSet, ImageCell, SetRows, DATASET_INFO_FILE,
};
use tic_shards::synth::hf_sets::{hf_rows, write_hf_sets, HF_TASKS};
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

/// The Arrow files of a build folder, sorted (one, or the shards in order).
fn arrow_files(build: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(build)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "arrow"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no Arrow file in {}", build.display());
    files
}

/// The one build folder of `set` in `layout` under the cache `root` (the fixtures': `datasets`
/// 2.8.0 wrote `hf_cache_old`, 5.2.0 `hf_cache_new`).
fn build_dir(root: &Path, set: HfSet, layout: CacheLayout) -> PathBuf {
    let configs: Vec<PathBuf> = match layout {
        CacheLayout::Datasets28 => std::fs::read_dir(root.join("nlphuji___parquet"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy().into_owned();
                n.starts_with(&format!("nlphuji--{}-", set.dataset_name()))
            })
            .collect(),
        CacheLayout::Current => vec![root
            .join(format!("nlphuji___{}", set.dataset_name()))
            .join("default")],
    };
    assert_eq!(
        configs.len(),
        1,
        "{set:?} {layout:?} under {}",
        root.display()
    );
    let version = configs[0].join("0.0.0");
    let hashes: Vec<PathBuf> = std::fs::read_dir(&version)
        .unwrap_or_else(|e| panic!("{}: {e}", version.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(hashes.len(), 1, "{}", version.display());
    hashes[0].clone()
}

fn fixture_cache(layout: CacheLayout) -> PathBuf {
    let which = match layout {
        CacheLayout::Datasets28 => "hf_cache_old",
        CacheLayout::Current => "hf_cache_new",
    };
    tic_testkit::fixture_dir("tic-eval").join(format!("hf/{which}/hf_cache"))
}

/// The keys of a JSON object, recursively (`a.b.c`), in order; values left out, and the
/// contents of `download_checksums` (keyed by the URLs a real download fetched).
fn key_paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
    if let Value::Object(m) = v {
        for (k, x) in m {
            let p = format!("{prefix}{k}");
            out.push(p.clone());
            if k != "download_checksums" {
                key_paths(x, &format!("{p}."), out);
            }
        }
    }
}

fn info(build: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(build.join(DATASET_INFO_FILE)).unwrap()).unwrap()
}

#[test]
fn schema_and_info_are_the_ones_datasets_wrote() {
    // Every set in both layouts: our schema is the one in the real `datasets`' files.
    for layout in [CacheLayout::Datasets28, CacheLayout::Current] {
        for set in HfSet::ALL {
            for file in arrow_files(&build_dir(&fixture_cache(layout), set, layout)) {
                assert_eq!(
                    file_schema(&file),
                    schema(set, layout),
                    "{}",
                    file.display()
                );
            }
        }
    }
    // tic-synth's builds: where each layout keeps them, that schema in every file, and a
    // `dataset_info.json` with the real one's keys in its order and the same features.
    let out = tempfile::tempdir().unwrap();
    let dirs = write_hf_sets(&args(out.path()), out.path()).unwrap();
    for (t, dir) in HF_TASKS.iter().zip(&dirs) {
        assert_eq!(
            build_dir(&out.path().join("hf_cache"), t.set, t.layout),
            *dir
        );
        let files = arrow_files(dir);
        assert_eq!(files.len(), t.shards, "{dir:?}");
        for file in files {
            assert_eq!(file_schema(&file), schema(t.set, t.layout), "{file:?}");
        }
        let (ours, real) = (
            info(dir),
            info(&build_dir(&fixture_cache(t.layout), t.set, t.layout)),
        );
        let (mut ok, mut rk) = (vec![], vec![]);
        key_paths(&ours, "", &mut ok);
        key_paths(&real, "", &mut rk);
        assert_eq!(ok, rk, "{:?}", t.set);
        for k in ["features", "builder_name", "config_name", "version"] {
            assert_eq!(ours[k], real[k], "{:?} {k}", t.set);
        }
    }
}

/// The python to read `layout`'s builds with, if one imports `datasets` (else the reason,
/// printed): 2.8 builds with DataComp's pin (`TIC_DATASETS_PYTHON`, else
/// `/tmp/fairface-venv/bin/python`), current ones with a current `datasets`
/// (`TIC_DATASETS_CURRENT_PYTHON`, else `/tmp/hf-venv/bin/python`); else `python3`.
fn datasets_python(layout: CacheLayout) -> Option<String> {
    let (var, default, pin) = match layout {
        CacheLayout::Datasets28 => (
            "TIC_DATASETS_PYTHON",
            "/tmp/fairface-venv/bin/python",
            "datasets==2.8.0",
        ),
        CacheLayout::Current => (
            "TIC_DATASETS_CURRENT_PYTHON",
            "/tmp/hf-venv/bin/python",
            "datasets>=3",
        ),
    };
    let py = std::env::var(var).unwrap_or_else(|_| {
        if Path::new(default).exists() {
            default.to_string()
        } else {
            "python3".into()
        }
    });
    // Any `datasets` reads the 2.8 layout; the current one (sharded, `dataset_name`) needs 3+.
    let check = match layout {
        CacheLayout::Datasets28 => "import datasets, PIL",
        CacheLayout::Current => {
            "import datasets, PIL, sys; sys.exit(int(datasets.__version__.split('.')[0]) < 3)"
        }
    };
    let ok = Command::new(&py)
        .args(["-c", check])
        .current_dir(std::env::temp_dir())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "SKIPPED the Hugging Face `datasets` check of the {layout:?} layout: {py} cannot \
             import datasets and PIL, or its datasets is too old (set {var} to a python with \
             `pip install '{pin}' pillow`)"
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
    let out = tempfile::tempdir().unwrap();
    let a = args(out.path());
    let dirs = write_hf_sets(&a, out.path()).unwrap();
    let rows = hf_rows(&a).unwrap();
    for ((t, dir), (set, rows)) in HF_TASKS.iter().zip(&dirs).zip(&rows) {
        let Some(py) = datasets_python(t.layout) else {
            continue;
        };
        let script = tic_testkit::fixture_dir("tic-shards").join("check_hf_cache.py");
        let res = Command::new(&py).arg(&script).arg(dir).output().unwrap();
        assert!(
            res.status.success(),
            "{} {} failed:\n{}",
            script.display(),
            dir.display(),
            String::from_utf8_lossy(&res.stderr)
        );
        let read: Vec<Value> = serde_json::from_slice(&res.stdout).unwrap();
        let got = &read[0];
        eprintln!(
            "{set:?} ({:?}): datasets {} read {} rows",
            t.layout, got["datasets"], got["num_rows"]
        );
        assert_eq!(got["num_rows"], json!(rows.len()), "{set:?}");
        let columns: Vec<&String> = got["features"].as_object().unwrap().keys().collect();
        let want: Vec<String> = schema(*set, t.layout)
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(columns, want.iter().collect::<Vec<_>>(), "{set:?}");
        let want_rows = expected_rows(rows, a.image_size);
        assert_eq!(got["rows"].as_array().unwrap(), &want_rows, "{set:?}");
    }
}
