//! The command lines of `tic-stats` (TiC's `generate_stats.py`) and `tic-sizes` (TiC's
//! `add_sizes.py`): their arguments, and what they print around [`super::generate_stats`],
//! [`super::write_sizes`] and, for `pipe:` patterns, [`super::count_pipe_shards`].

use super::{count_pipe_shards, generate_stats, write_sizes};
use crate::pipe::is_pipe;
use crate::storage::Location;
use clap::Parser;
use std::process::ExitCode;
use std::time::Instant;

/// Count the samples of every shard of every time split (TiC's generate_stats.py).
///
/// Writes `{name}_stats.json` = {"successes": n} (samples with a json member) next to every
/// `.tar` under each split of URL (layouts URL/split/ and URL/split/shard/), reading only tar
/// headers. Shards that already have a stats file are skipped. A split that is an incomplete
/// tic-reshard output (`"complete": false` in its meta.json) is refused unless
/// --accept-incomplete.
#[derive(Parser, Debug)]
#[command(name = "tic-stats", version)]
pub struct StatsArgs {
    /// Folder holding the time splits (local path or object-store URL), or a webdataset
    /// `pipe:CMD` pattern such as `pipe:aws s3 cp s3://b/{00000000..00000011}.tar -`: its
    /// shards are counted from the streams and nothing is written (the per-shard counts are in
    /// --json's "shards").
    #[arg(long)]
    pub url: String,
    /// Parallel workers.
    #[arg(long, default_value_t = std::thread::available_parallelism().map_or(1, |n| n.get()))]
    pub num_proc: usize,
    /// Less output.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Accept splits that tic-reshard marked incomplete (input lost to damaged tars).
    #[arg(long)]
    pub accept_incomplete: bool,
    /// Also print the counts as one JSON object on stdout: {"shards_counted", "samples" (in
    /// the shards counted), "shards_skipped" (already had stats), "failed" (the errors)}.
    #[arg(long)]
    pub json: bool,
}

/// Write a `sizes.json` shard table in every time split (TiC's add_sizes.py).
///
/// Writes `sizes.json` ({"00000000.tar": n, ...}) in every split of URL (layouts URL/split/ and
/// URL/split/shard/) from its `_stats.json` files. Tar files without a stats file are named in
/// a warning (run tic-stats first). A split that is an incomplete tic-reshard output
/// (`"complete": false` in its meta.json) is refused unless --accept-incomplete.
#[derive(Parser, Debug)]
#[command(name = "tic-sizes", version)]
pub struct SizesArgs {
    /// Folder holding the time splits (local path or object-store URL), or a webdataset
    /// `pipe:CMD` pattern such as `pipe:cat /data/{00000000..00000011}.tar`: its shards are
    /// counted from the streams and the sizes.json table is printed on stdout (redirect it
    /// where it belongs; with --json it is the summary's "sizes").
    #[arg(long)]
    pub url: String,
    /// Parallel workers.
    #[arg(long, default_value_t = std::thread::available_parallelism().map_or(1, |n| n.get()))]
    pub num_proc: usize,
    /// Accept splits that tic-reshard marked incomplete (input lost to damaged tars).
    #[arg(long)]
    pub accept_incomplete: bool,
    /// Also print the counts as one JSON object on stdout: {"splits", "samples" (listed in
    /// the sizes.json files written), "missing_stats" (tar files left out)}.
    #[arg(long)]
    pub json: bool,
}

/// Runs `tic-stats`: prints the failures, the `--json` counts and a summary line. Exit status
/// 0 when every shard was counted, 1 when some failed, 2 when the run failed.
pub fn run_tic_stats(a: &StatsArgs) -> ExitCode {
    let t = Instant::now();
    if is_pipe(&a.url) {
        return stats_pipe(a, t);
    }
    let r = Location::parse(&a.url)
        .and_then(|root| generate_stats(&root, a.num_proc, a.quiet, a.accept_incomplete));
    match r {
        Ok(s) => {
            for f in &s.failed {
                eprintln!("tic-stats: error: {f}");
            }
            if a.json {
                let v = serde_json::json!({
                    "shards_counted": s.written,
                    "samples": s.samples,
                    "shards_skipped": s.skipped,
                    "failed": s.failed,
                });
                println!("{v}");
            }
            let secs = t.elapsed().as_secs_f64();
            eprintln!(
                "tic-stats: {} shards counted ({} samples), {} already had stats, {} failed, in {secs:.2}s ({:.0} samples/s)",
                s.written,
                s.samples,
                s.skipped,
                s.failed.len(),
                s.samples as f64 / secs
            );
            if s.failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("tic-stats: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `tic-stats --url pipe:…`: counts the streamed shards; writes no file.
fn stats_pipe(a: &StatsArgs, t: Instant) -> ExitCode {
    let c = match count_pipe_shards(&a.url, a.num_proc, a.quiet) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tic-stats: error: {e:#}");
            return ExitCode::from(2);
        }
    };
    for f in &c.failed {
        eprintln!("tic-stats: error: {f}");
    }
    if a.json {
        let shards: serde_json::Map<String, serde_json::Value> = c
            .shards
            .iter()
            .map(|(_, name, n)| (name.clone(), (*n).into()))
            .collect();
        let v = serde_json::json!({
            "shards_counted": c.shards.len(),
            "samples": c.samples(),
            "shards_skipped": 0,
            "failed": c.failed,
            "shards": shards,
        });
        println!("{v}");
    }
    eprintln!(
        "tic-stats: {} streamed shards counted ({} samples), {} failed, in {:.2}s (pipe: URLs: no stats files written; tic-sizes --url 'pipe:…' > sizes.json writes the table)",
        c.shards.len(),
        c.samples(),
        c.failed.len(),
        t.elapsed().as_secs_f64()
    );
    if c.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Runs `tic-sizes`: warns about tars left out for lack of stats, prints the `--json` counts
/// and a summary line.
pub fn run_tic_sizes(a: &SizesArgs) -> anyhow::Result<()> {
    if is_pipe(&a.url) {
        return sizes_pipe(a);
    }
    let root = Location::parse(&a.url)?;
    let s = write_sizes(&root, a.num_proc, a.accept_incomplete)?;
    for m in &s.missing_stats {
        eprintln!(
            "tic-sizes: warning: {m} has no _stats.json and is not listed in sizes.json (run tic-stats first)"
        );
    }
    if a.json {
        let v = serde_json::json!({
            "splits": s.splits,
            "samples": s.samples,
            "missing_stats": s.missing_stats,
        });
        println!("{v}");
    }
    eprintln!(
        "tic-sizes: wrote sizes.json in {} splits ({} samples{})",
        s.splits,
        s.samples,
        if s.missing_stats.is_empty() {
            String::new()
        } else {
            format!(", {} shards without stats left out", s.missing_stats.len())
        }
    );
    Ok(())
}

/// `tic-sizes --url pipe:…`: counts the streamed shards and prints the sizes.json table on
/// stdout. A shard that cannot be counted is an error (the table would be wrong).
fn sizes_pipe(a: &SizesArgs) -> anyhow::Result<()> {
    let c = count_pipe_shards(&a.url, a.num_proc, false)?;
    if !c.failed.is_empty() {
        anyhow::bail!(
            "{} of {} shards could not be counted:\n{}",
            c.failed.len(),
            c.failed.len() + c.shards.len(),
            c.failed.join("\n")
        );
    }
    let table = c.sizes_json();
    if a.json {
        let sizes: serde_json::Value = serde_json::from_str(&table)?;
        let v = serde_json::json!({
            "splits": 0,
            "samples": c.samples(),
            "missing_stats": [],
            "sizes": sizes,
        });
        println!("{v}");
    } else {
        println!("{table}");
    }
    eprintln!(
        "tic-sizes: counted {} streamed shards ({} samples); the sizes.json table is on stdout",
        c.shards.len(),
        c.samples()
    );
    Ok(())
}
