//! Turn a resharder output folder into the WebDataset layout CLIP_benchmark reads
//! (TiC's `convert_wds.sh`): `N.tar`/`N.json` without zero padding, `nshards.txt`,
//! `count.txt`, `dataset_type.txt`, and for classification the ImageNet `classnames.txt` and
//! `zeroshot_classification_templates.txt` shipped with tic-rs (no network).
//!
//! Reruns are safe: files already renamed are left alone, text files are rewritten atomically.

use crate::imagenet;
use crate::storage::Location;
use anyhow::{bail, Context, Result};
use serde_json::Value;

/// The dataset types CLIP_benchmark knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DatasetType {
    /// Image-text retrieval (`txt` holds the captions).
    Retrieval,
    /// Zero-shot classification (`cls` holds the class id).
    Classification,
    /// Multi-label classification (`npy` labels).
    Multilabel,
}

impl DatasetType {
    /// The word written to `dataset_type.txt`.
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetType::Retrieval => "retrieval",
            DatasetType::Classification => "classification",
            DatasetType::Multilabel => "multilabel",
        }
    }
}

/// What [`convert`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ConvertSummary {
    /// Tar files renamed now.
    pub renamed: usize,
    /// `nshards.txt` value.
    pub nshards: u64,
    /// `count.txt` value.
    pub count: u64,
}

/// Leading-zero-free name of a numbered file, e.g. `00000012.tar` -> `12.tar`, if it is one.
fn unpadded(name: &str, suffix: &str) -> Option<String> {
    let stem = name.strip_suffix(suffix)?;
    if stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = stem.parse().ok()?;
    Some(format!("{n}"))
}

/// Converts the resharder output in `dir` in place.
pub fn convert(dir: &Location, kind: DatasetType) -> Result<ConvertSummary> {
    let meta_loc = dir.join("meta.json");
    let meta: Value = serde_json::from_slice(&meta_loc.read().with_context(|| {
        format!("{dir} has no meta.json: is it a tic-reshard/resharder.py output folder?")
    })?)
    .with_context(|| format!("{meta_loc}: not JSON"))?;
    let field = |k: &str| -> Result<u64> {
        meta.get(k)
            .and_then(Value::as_u64)
            .with_context(|| format!("{meta_loc}: no integer {k:?}"))
    };
    let mut s = ConvertSummary {
        nshards: field("output_shard_count")?,
        count: field("output_count")?,
        ..Default::default()
    };
    let entries = dir.list()?;
    for e in entries.iter().filter(|e| !e.is_dir) {
        if let Some(n) = unpadded(&e.name, ".tar") {
            if format!("{n}.tar") != e.name {
                dir.join(&e.name)
                    .rename_to(&dir.join(&format!("{n}.tar")))?;
                s.renamed += 1;
            }
        } else if let Some(n) = unpadded(&e.name, "_stats.json") {
            dir.join(&e.name)
                .rename_to(&dir.join(&format!("{n}.json")))?;
        }
    }
    let tars = dir
        .list()?
        .into_iter()
        .filter(|e| unpadded(&e.name, ".tar").is_some())
        .count() as u64;
    if tars != s.nshards {
        bail!(
            "{dir}: meta.json says {} shards but {tars} numbered tar files are present",
            s.nshards
        );
    }
    dir.join("nshards.txt")
        .write(format!("{}\n", s.nshards).as_bytes())?;
    dir.join("count.txt")
        .write(format!("{}\n", s.count).as_bytes())?;
    dir.join("dataset_type.txt")
        .write(format!("{}\n", kind.as_str()).as_bytes())?;
    if kind == DatasetType::Classification {
        dir.join("classnames.txt")
            .write(imagenet::CLASSNAMES.as_bytes())?;
        dir.join("zeroshot_classification_templates.txt")
            .write(imagenet::TEMPLATES.as_bytes())?;
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(unpadded("00000012.tar", ".tar").as_deref(), Some("12"));
        assert_eq!(unpadded("0.tar", ".tar").as_deref(), Some("0"));
        assert_eq!(unpadded("a1.tar", ".tar"), None);
        assert_eq!(
            unpadded("00000003_stats.json", "_stats.json").as_deref(),
            Some("3")
        );
    }
}
