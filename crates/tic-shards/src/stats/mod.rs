//! Per-shard sample counts of time-split folders: `{name}_stats.json` files (TiC's
//! `generate_stats.py`) and per-split `sizes.json` tables (TiC's `add_sizes.py`).
//!
//! Both take a root holding time splits, laid out as `root/split/*.tar` or
//! `root/split/shard/*.tar` (a split folder without tars is expanded one level), local or in
//! an object store. Unlike the originals, local paths work, nothing is hard-coded to `s3://`,
//! and a split folder is expanded only when it really holds no tar files. The two command
//! lines (arguments, reports) are in `commands` ([`run_tic_stats`], [`run_tic_sizes`]); the
//! two file formats are [`crate::counts`], which the other tools write and read too.

mod commands;

pub use commands::{run_tic_sizes, run_tic_stats, SizesArgs, StatsArgs};

use crate::counts::{
    sizes_json, stats_file_of, stats_json, stats_successes, tar_of_stats_file, SIZES_FILE,
    STATS_SUFFIX,
};
use crate::storage::Location;
use crate::wds::scan_shard;
use anyhow::{Context, Result};
use rayon::prelude::*;
use serde_json::Value;
use std::collections::BTreeMap;

/// The split folders under `root`: its sub-folders, each replaced by its own sub-folders when
/// it holds no `.tar` file.
pub fn list_timesplit_paths(root: &Location) -> Result<Vec<Location>> {
    let mut out = Vec::new();
    for e in root.list()?.into_iter().filter(|e| e.is_dir) {
        let split = root.join(&e.name);
        let children = split.list()?;
        if children
            .iter()
            .any(|c| !c.is_dir && c.name.ends_with(".tar"))
            || children.is_empty()
        {
            out.push(split);
        } else {
            out.extend(
                children
                    .into_iter()
                    .filter(|c| c.is_dir)
                    .map(|c| split.join(&c.name)),
            );
        }
    }
    Ok(out)
}

/// Number of samples with a `json` member in a shard, reading only tar headers (and not
/// member bodies) of local files; remote shards are streamed to a temporary file first.
pub fn count_json_samples(shard: &Location) -> Result<u64> {
    let copy = shard.fetch()?;
    let file = std::fs::File::open(copy.path()).with_context(|| format!("opening {shard}"))?;
    if file.metadata()?.len() == 0 {
        anyhow::bail!("{shard}: empty file");
    }
    // SAFETY: the shard is not modified while it is read.
    let map = unsafe { memmap2::Mmap::map(&file) }.with_context(|| format!("mapping {shard}"))?;
    let scan = scan_shard(&map, &shard.to_string());
    if let Some(e) = scan.errors.first() {
        anyhow::bail!("{e}");
    }
    Ok(scan
        .samples
        .iter()
        .filter(|s| s.member("json").is_some())
        .count() as u64)
}

/// Outcome of [`generate_stats`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StatsSummary {
    /// Shards counted now.
    pub written: usize,
    /// Shards that already had a stats file.
    pub skipped: usize,
    /// Samples counted now.
    pub samples: u64,
    /// Shards that could not be read (with the reason).
    pub failed: Vec<String>,
}

/// Flag of `tic-stats` and `tic-sizes` that accepts incomplete reshards.
pub const ACCEPT_INCOMPLETE_FLAG: &str = "--accept-incomplete";

/// Refuses (before anything is written) when a split is an incomplete `tic-reshard` output
/// (`"complete": false` in its `meta.json`), unless `accept_incomplete`.
fn check_splits(splits: &[Location], accept_incomplete: bool) -> Result<()> {
    for split in splits {
        crate::reshard::check_complete(split, accept_incomplete, ACCEPT_INCOMPLETE_FLAG)?;
    }
    Ok(())
}

/// Writes `{name}_stats.json` = `{"successes": n}` next to every tar of every split that does
/// not have one yet. A split that is an incomplete reshard is refused unless
/// `accept_incomplete`.
pub fn generate_stats(
    root: &Location,
    threads: usize,
    quiet: bool,
    accept_incomplete: bool,
) -> Result<StatsSummary> {
    let mut todo = Vec::new();
    let mut summary = StatsSummary::default();
    let splits = list_timesplit_paths(root)?;
    check_splits(&splits, accept_incomplete)?;
    for split in splits {
        let entries = split.list()?;
        let names: std::collections::HashSet<&str> =
            entries.iter().map(|e| e.name.as_str()).collect();
        for e in entries
            .iter()
            .filter(|e| !e.is_dir && e.name.ends_with(".tar"))
        {
            let stem = e.name.trim_end_matches(".tar");
            if names.contains(stats_file_of(&e.name).as_str()) {
                summary.skipped += 1;
            } else {
                todo.push((split.clone(), stem.to_string()));
            }
        }
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()?;
    let pb = crate::cli::progress(todo.len() as u64, "shards", quiet);
    let results: Vec<Result<u64, String>> = pool.install(|| {
        todo.par_iter()
            .map(|(split, stem)| {
                let r = count_json_samples(&split.join(&format!("{stem}.tar")))
                    .and_then(|n| {
                        split
                            .join(&stats_file_of(stem))
                            .write(stats_json(n).as_bytes())?;
                        Ok(n)
                    })
                    .map_err(|e| format!("{e:#}"));
                pb.inc(1);
                r
            })
            .collect()
    });
    pb.finish_and_clear();
    for r in results {
        match r {
            Ok(n) => {
                summary.written += 1;
                summary.samples += n;
            }
            Err(e) => summary.failed.push(e),
        }
    }
    Ok(summary)
}

/// Outcome of [`write_sizes`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SizesSummary {
    /// Splits whose `sizes.json` was written.
    pub splits: usize,
    /// Samples listed.
    pub samples: u64,
    /// Tar files without a `_stats.json` (not listed; run `tic-stats` first), as full paths.
    pub missing_stats: Vec<String>,
}

/// Writes `sizes.json` (`{"00000000.tar": n, …}`, sorted) in every split from its stats files.
/// Tar files without a stats file are not listed and are named in the summary. A split that is
/// an incomplete reshard is refused unless `accept_incomplete`.
pub fn write_sizes(
    root: &Location,
    threads: usize,
    accept_incomplete: bool,
) -> Result<SizesSummary> {
    let splits = list_timesplit_paths(root)?;
    check_splits(&splits, accept_incomplete)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()?;
    let totals: Vec<(u64, Vec<String>)> = pool.install(|| {
        splits
            .par_iter()
            .map(|split| -> Result<(u64, Vec<String>)> {
                let mut table = BTreeMap::new();
                let entries = split.list()?;
                let names: std::collections::HashSet<&str> =
                    entries.iter().map(|e| e.name.as_str()).collect();
                let missing: Vec<String> = entries
                    .iter()
                    .filter(|e| !e.is_dir && e.name.ends_with(".tar"))
                    .filter(|e| !names.contains(stats_file_of(&e.name).as_str()))
                    .map(|e| split.join(&e.name).to_string())
                    .collect();
                for e in entries
                    .iter()
                    .filter(|e| !e.is_dir && e.name.ends_with(STATS_SUFFIX))
                {
                    let loc = split.join(&e.name);
                    let v: Value = serde_json::from_slice(&loc.read()?)
                        .with_context(|| format!("{loc}: not JSON"))?;
                    let n = stats_successes(&v)
                        .with_context(|| format!("{loc}: no integer \"successes\" field"))?;
                    // The original keeps the name up to its first `_`, which merges shards
                    // named like tic-make-tars' `train_batch_0__00000000.tar`.
                    table.insert(tar_of_stats_file(&e.name), n);
                }
                let total = table.values().sum();
                split.join(SIZES_FILE).write(sizes_json(table).as_bytes())?;
                Ok((total, missing))
            })
            .collect::<Result<_>>()
    })?;
    let mut summary = SizesSummary {
        splits: splits.len(),
        ..Default::default()
    };
    for (n, missing) in totals {
        summary.samples += n;
        summary.missing_stats.extend(missing);
    }
    Ok(summary)
}

/// Sample counts of the shards of a `pipe:` pattern, counted from the streams.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PipeCounts {
    /// Per shard, in pattern order: (its `pipe:` URL, its name as in `sizes.json`, samples).
    pub shards: Vec<(String, String, u64)>,
    /// Shards whose command failed or whose stream was not a complete tar (with the reason).
    pub failed: Vec<String>,
}

impl PipeCounts {
    /// The samples counted.
    pub fn samples(&self) -> u64 {
        self.shards.iter().map(|s| s.2).sum()
    }

    /// The counts as a `sizes.json` table (`{"00000000.tar": n, …}`, sorted by name, written
    /// as Python's `json.dump` writes it).
    pub fn sizes_json(&self) -> String {
        let table: BTreeMap<String, u64> = self
            .shards
            .iter()
            .map(|(_, name, n)| (name.clone(), *n))
            .collect();
        sizes_json(table)
    }
}

/// Streams every shard of the `pipe:` pattern `pattern` (brace-expanded,
/// [`crate::pipe::expand_braces`]) on `threads` threads and counts its samples with a `json`
/// member, as [`generate_stats`] does for files. Nothing is written.
pub fn count_pipe_shards(pattern: &str, threads: usize, quiet: bool) -> Result<PipeCounts> {
    let urls = crate::pipe::expand_braces(pattern)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()?;
    let pb = crate::cli::progress(urls.len() as u64, "shards", quiet);
    let results: Vec<Result<u64, String>> = pool.install(|| {
        urls.par_iter()
            .map(|u| {
                let r = Location::parse(u)
                    .and_then(|loc| count_json_samples(&loc))
                    .map_err(|e| format!("{e:#}"));
                pb.inc(1);
                r
            })
            .collect()
    });
    pb.finish_and_clear();
    let mut out = PipeCounts::default();
    for (u, r) in urls.iter().zip(results) {
        match r {
            Ok(n) => out.shards.push((u.clone(), crate::pipe::shard_name(u), n)),
            Err(e) => out.failed.push(e),
        }
    }
    Ok(out)
}
