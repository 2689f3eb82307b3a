//! Writing build folders of either layout as `datasets` leaves them: the Arrow streams, then
//! `dataset_info.json`, each atomically (the info file last, as `datasets` finishes a build).

use super::{
    current_build_dir, features_json, parquet_config_name, record_batch, shard_file, split_file,
    v28_build_dir, CacheLayout, HfSet, SetRows, DATASET_INFO_FILE, DEFAULT_CONFIG, PARQUET_BUILDER,
    SPLIT, VERSION_DIR,
};
use crate::atomic::AtomicFile;
use anyhow::{bail, Context, Result};
use arrow_array::RecordBatch;
use arrow_ipc::writer::StreamWriter;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `batch` as an Arrow IPC stream to `path`, atomically; returns the file's size.
fn write_stream(path: &Path, batch: &RecordBatch) -> Result<u64> {
    let mut f = AtomicFile::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = StreamWriter::try_new(&mut f, &batch.schema())
        .with_context(|| format!("writing {}", path.display()))?;
    w.write(batch)
        .and_then(|()| w.finish())
        .with_context(|| format!("writing {}", path.display()))?;
    drop(w);
    f.flush()?;
    f.commit()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(std::fs::metadata(path)?.len())
}

/// The `version` object of a script-less set's `dataset_info.json`.
fn version_json() -> Value {
    json!({"version_str": VERSION_DIR, "major": 0, "minor": 0, "patch": 0})
}

/// `dataset_info.json` of a 2.8 parquet build of `set` (`num_bytes`: the Arrow file's size).
pub fn dataset_info_v28(set: HfSet, num_examples: usize, num_bytes: u64) -> Value {
    let layout = CacheLayout::Datasets28;
    json!({
        "description": "", "citation": "", "homepage": "", "license": "",
        "features": features_json(set, layout),
        "builder_name": PARQUET_BUILDER,
        "config_name": parquet_config_name(set),
        "version": version_json(),
        "splits": {SPLIT: {"name": SPLIT, "num_bytes": num_bytes, "num_examples": num_examples,
                           "dataset_name": PARQUET_BUILDER}},
        "download_checksums": {}, "download_size": 0,
        "dataset_size": num_bytes, "size_in_bytes": num_bytes,
    })
}

/// `dataset_info.json` of a current-layout build of `set` whose test split has
/// `shard_lengths` rows per Arrow file (`num_bytes`: the files' total size). Keys and their
/// order as `datasets` 5.2 writes them; `shard_lengths` only for a sharded split.
pub fn dataset_info_current(set: HfSet, shard_lengths: &[usize], num_bytes: u64) -> Value {
    let name = set.dataset_name();
    let mut split = json!({"name": SPLIT, "num_bytes": num_bytes,
                           "num_examples": shard_lengths.iter().sum::<usize>()});
    if shard_lengths.len() > 1 {
        split["shard_lengths"] = json!(shard_lengths);
    }
    split["dataset_name"] = json!(name);
    json!({
        "description": "", "citation": "", "homepage": "", "license": "",
        "features": features_json(set, CacheLayout::Current),
        "builder_name": PARQUET_BUILDER,
        "dataset_name": name,
        "config_name": DEFAULT_CONFIG,
        "version": version_json(),
        "splits": {SPLIT: split},
        "download_size": 0,
        "dataset_size": num_bytes, "size_in_bytes": num_bytes,
    })
}

/// Writes `rows` of `set` under `cache` as a `layout` build (`hash`: the 2.8 config hash, 16
/// hex digits, or the current layout's hub revision, 40): the rows in `shards` Arrow files as
/// equal as can be (`PREFIX-test.arrow` for one, `PREFIX-test-0000i-of-0000n.arrow` for more,
/// current layout only), then `dataset_info.json`. Returns the build folder.
pub fn write_build(
    cache: &Path,
    set: HfSet,
    layout: CacheLayout,
    hash: &str,
    rows: &SetRows,
    shards: usize,
) -> Result<PathBuf> {
    let name = set.dataset_name();
    if rows.is_empty() {
        bail!("{name}: no rows to write");
    }
    if shards == 0 || shards > rows.len() || (shards > 1 && !layout.shards_splits()) {
        bail!(
            "{name}: cannot write {} rows as {shards} shards in the {layout:?} layout",
            rows.len()
        );
    }
    let dir = match layout {
        CacheLayout::Datasets28 => v28_build_dir(cache, set, hash),
        CacheLayout::Current => current_build_dir(cache, set, hash),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let batch = record_batch(set, rows, layout)?;
    let prefix = layout.file_prefix(set);
    let (mut lengths, mut bytes) = (Vec::with_capacity(shards), 0);
    for i in 0..shards {
        let (start, end) = (i * rows.len() / shards, (i + 1) * rows.len() / shards);
        let file = if shards == 1 {
            split_file(prefix)
        } else {
            shard_file(prefix, i, shards)
        };
        bytes += write_stream(&dir.join(file), &batch.slice(start, end - start))?;
        lengths.push(end - start);
    }
    let info = match layout {
        CacheLayout::Datasets28 => dataset_info_v28(set, rows.len(), bytes),
        CacheLayout::Current => dataset_info_current(set, &lengths, bytes),
    };
    let info = crate::pyjson::to_string(&info);
    crate::atomic::write_atomic(dir.join(DATASET_INFO_FILE), info.as_bytes())
        .with_context(|| format!("writing {}", dir.join(DATASET_INFO_FILE).display()))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::super::WinogavilRecord;
    use super::*;

    #[test]
    fn wrong_rows_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let (v28, cur) = (CacheLayout::Datasets28, CacheLayout::Current);
        let none = SetRows::Winogavil(vec![]);
        let e = write_build(d.path(), HfSet::Flickr, v28, "00", &none, 1);
        assert!(e.unwrap_err().to_string().contains("no rows"));
        let w = WinogavilRecord {
            candidates: vec!["a".into(), "b".into()],
            cue: "c".into(),
            associations: vec!["a".into()],
            candidate_images: vec![],
            id: 7,
        };
        let one = SetRows::Winogavil(vec![w.clone()]);
        let e = record_batch(HfSet::Winogavil, &one, cur);
        assert!(e.unwrap_err().to_string().contains("instance 7"));
        let e = record_batch(HfSet::Flickr, &one, v28);
        assert!(e.unwrap_err().to_string().contains("wrong kind"));
        for (layout, shards) in [(v28, 2), (cur, 0), (cur, 2)] {
            let e = write_build(d.path(), HfSet::Winogavil, layout, "00", &one, shards);
            assert!(e.unwrap_err().to_string().contains("cannot write 1 rows"));
        }
    }
}
