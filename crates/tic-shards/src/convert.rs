//! Turn a resharder output folder into the WebDataset layout CLIP_benchmark reads
//! (TiC's `convert_wds.sh`): `N.tar`/`N.json` without zero padding, `nshards.txt`,
//! `count.txt`, `dataset_type.txt`, and for classification the ImageNet `classnames.txt` and
//! `zeroshot_classification_templates.txt` shipped with tic-rs (no network).
//!
//! Besides resharder output (counts from `meta.json`), any folder of shards with a `sizes.json`
//! converts too, e.g. `tic-make-tars --datacomp-compat` output (TiC-YFCC15M / TiC-RedCaps test
//! splits): its shards are numbered `0.tar, 1.tar, …` in name order, their `_stats.json` follow,
//! and `sizes.json` is rewritten with the new names; counts come from `sizes.json`.
//!
//! Reruns are safe: files already renamed are left alone, text files are rewritten atomically.

use crate::counts::{sizes_json, stats_file_of, SIZES_FILE, STATS_SUFFIX};
use crate::evalset_layout::{shard_file, shard_stats_file, SetMetadata};
use crate::imagenet;
use crate::reshard::{ReshardMeta, META_FILE};
use crate::storage::Location;
use anyhow::{bail, Context, Result};
use serde_json::Value;

/// The dataset type the command line takes (defined with the layout).
pub use crate::evalset_layout::DatasetType;

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

/// Shard and sample counts from a resharder `meta.json`.
fn counts_from_meta(meta_loc: &Location) -> Result<(u64, u64)> {
    let meta = ReshardMeta::from_slice(&meta_loc.read()?)
        .with_context(|| format!("{meta_loc}: not JSON"))?;
    let shards = meta
        .output_shard_count()
        .with_context(|| format!("{meta_loc}: no integer \"output_shard_count\""))?;
    let samples = meta
        .output_count()
        .with_context(|| format!("{meta_loc}: no integer \"output_count\""))?;
    Ok((shards, samples))
}

/// Numbers the shards listed in `dir/sizes.json` `0.tar, 1.tar, …` in name order (their
/// `{stem}_stats.json` become `{i}.json`), rewrites `sizes.json` with the new names, and returns
/// the shard and sample counts. Shards already numbered keep their number. A crash half-way
/// leaves the old `sizes.json` and some renamed shards; a rerun finishes the job.
fn number_from_sizes(dir: &Location, renamed: &mut usize) -> Result<(u64, u64)> {
    let sizes_loc = dir.join(SIZES_FILE);
    let sizes: serde_json::Map<String, Value> = serde_json::from_slice(&sizes_loc.read()?)
        .with_context(|| format!("{sizes_loc}: not a JSON object of shard name -> count"))?;
    let mut names: Vec<(&String, u64)> = Vec::with_capacity(sizes.len());
    for (name, n) in &sizes {
        let n = n
            .as_u64()
            .with_context(|| format!("{sizes_loc}: {name:?} has no integer count"))?;
        if !name.ends_with(".tar") {
            bail!("{sizes_loc}: {name:?} is not a .tar shard name");
        }
        names.push((name, n));
    }
    let all_numbered = names.iter().all(|(n, _)| unpadded(n, ".tar").is_some());
    if !all_numbered {
        names.sort();
        let mut new_sizes = Vec::with_capacity(names.len());
        for (i, (name, n)) in names.iter().enumerate() {
            let target = dir.join(&shard_file(i));
            let source = dir.join(name);
            if source.exists()? {
                if name.as_str() != shard_file(i) {
                    if target.exists()? {
                        bail!("{dir}: both {name} and {i}.tar exist; a folder to convert holds either numbered or named shards");
                    }
                    source.rename_to(&target)?;
                    *renamed += 1;
                }
            } else if !target.exists()? {
                bail!("{sizes_loc} lists {name}, which is missing from {dir}");
            }
            let stats = dir.join(&stats_file_of(name));
            if stats.exists()? {
                stats.rename_to(&dir.join(&shard_stats_file(i)))?;
            }
            new_sizes.push((shard_file(i), *n));
        }
        sizes_loc.write(sizes_json(new_sizes).as_bytes())?;
    }
    Ok((names.len() as u64, names.iter().map(|(_, n)| n).sum()))
}

/// Converts `dir` in place: a resharder output folder (counts from `meta.json`) or any folder
/// of shards listed in a `sizes.json` (see the module docs).
pub fn convert(dir: &Location, kind: DatasetType) -> Result<ConvertSummary> {
    let meta_loc = dir.join(META_FILE);
    let mut renamed = 0;
    let (nshards, count) = if meta_loc.exists()? {
        counts_from_meta(&meta_loc)?
    } else if dir.join(SIZES_FILE).exists()? {
        number_from_sizes(dir, &mut renamed)?
    } else {
        bail!(
            "{dir} has neither meta.json (tic-reshard/resharder.py output) nor sizes.json \
             (tic-make-tars --datacomp-compat, tic-sizes): nothing says how many samples it holds"
        );
    };
    let mut s = ConvertSummary {
        nshards,
        count,
        renamed,
    };
    let entries = dir.list()?;
    for e in entries.iter().filter(|e| !e.is_dir) {
        if let Some(n) = unpadded(&e.name, ".tar") {
            if shard_file(&n) != e.name {
                dir.join(&e.name).rename_to(&dir.join(&shard_file(&n)))?;
                s.renamed += 1;
            }
        } else if let Some(n) = unpadded(&e.name, STATS_SUFFIX) {
            dir.join(&e.name)
                .rename_to(&dir.join(&shard_stats_file(&n)))?;
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
    let classes = (kind == DatasetType::Classification)
        .then_some((imagenet::CLASSNAMES, imagenet::TEMPLATES));
    let metadata = SetMetadata {
        kind,
        nshards: s.nshards,
        count: s.count,
        classes,
    };
    for (name, bytes) in metadata.files("") {
        dir.join(&name).write(&bytes)?;
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

    #[test]
    fn sizes_json_folders_are_numbered_in_name_order() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        for (name, body) in [("t__00000001", "second"), ("t__00000000", "first")] {
            std::fs::write(d.join(format!("{name}.tar")), body).unwrap();
            std::fs::write(d.join(format!("{name}_stats.json")), body).unwrap();
        }
        std::fs::write(
            d.join("sizes.json"),
            r#"{"t__00000001.tar": 3, "t__00000000.tar": 4}"#,
        )
        .unwrap();
        let loc = Location::local(d);
        let s = convert(&loc, DatasetType::Retrieval).unwrap();
        assert_eq!((s.nshards, s.count, s.renamed), (2, 7, 2));
        let read = |n: &str| std::fs::read_to_string(d.join(n)).unwrap();
        assert_eq!(read("0.tar"), "first");
        assert_eq!(read("1.tar"), "second");
        assert_eq!(read("1.json"), "second");
        assert_eq!(read("nshards.txt"), "2\n");
        assert_eq!(read("count.txt"), "7\n");
        assert_eq!(read("sizes.json"), r#"{"0.tar": 4, "1.tar": 3}"#);
        assert!(!d.join("t__00000000.tar").exists());
        // A rerun changes nothing.
        let again = convert(&loc, DatasetType::Retrieval).unwrap();
        assert_eq!((again.nshards, again.count, again.renamed), (2, 7, 0));
        assert_eq!(read("0.tar"), "first");
    }

    #[test]
    fn interrupted_numbering_finishes_on_rerun() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        // As if a first run renamed a__0 to 0.tar and then died.
        std::fs::write(d.join("0.tar"), "first").unwrap();
        std::fs::write(d.join("a__1.tar"), "second").unwrap();
        std::fs::write(d.join("sizes.json"), r#"{"a__0.tar": 1, "a__1.tar": 2}"#).unwrap();
        let s = convert(&Location::local(d), DatasetType::Retrieval).unwrap();
        assert_eq!((s.nshards, s.count, s.renamed), (2, 3, 1));
        assert_eq!(std::fs::read_to_string(d.join("1.tar")).unwrap(), "second");
    }

    #[test]
    fn folder_without_counts_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("x.tar"), "").unwrap();
        let err = convert(&Location::local(tmp.path()), DatasetType::Retrieval).unwrap_err();
        assert!(format!("{err:#}").contains("neither meta.json"), "{err:#}");
    }
}
