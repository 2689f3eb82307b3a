//! `tic-stats`: TiC's `generate_stats.py` — `{name}_stats.json` for every shard of every time split.

use clap::Parser;
use std::process::ExitCode;
use tic_shards::{cli, stats, storage::Location};

/// Count the samples of every shard of every time split (TiC's generate_stats.py).
///
/// Writes `{name}_stats.json` = {"successes": n} (samples with a json member) next to every
/// `.tar` under each split of URL (layouts URL/split/ and URL/split/shard/), reading only tar
/// headers. Shards that already have a stats file are skipped. A split that is an incomplete
/// tic-reshard output (`"complete": false` in its meta.json) is refused unless
/// --accept-incomplete.
#[derive(Parser, Debug)]
#[command(name = "tic-stats", version)]
struct Args {
    /// Folder holding the time splits (local path or object-store URL), or a webdataset
    /// `pipe:CMD` pattern such as `pipe:aws s3 cp s3://b/{00000000..00000011}.tar -`: its
    /// shards are counted from the streams and nothing is written (the per-shard counts are in
    /// --json's "shards").
    #[arg(long)]
    url: String,
    /// Parallel workers.
    #[arg(long, default_value_t = std::thread::available_parallelism().map_or(1, |n| n.get()))]
    num_proc: usize,
    /// Less output.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Accept splits that tic-reshard marked incomplete (input lost to damaged tars).
    #[arg(long)]
    accept_incomplete: bool,
    /// Also print the counts as one JSON object on stdout: {"shards_counted", "samples" (in
    /// the shards counted), "shards_skipped" (already had stats), "failed" (the errors)}.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let a = Args::parse();
    cli::init_logging(0, u8::from(a.quiet));
    let t = std::time::Instant::now();
    if tic_shards::pipe::is_pipe(&a.url) {
        return pipe_main(&a, t);
    }
    let r = Location::parse(&a.url)
        .and_then(|root| stats::generate_stats(&root, a.num_proc, a.quiet, a.accept_incomplete));
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

/// `--url pipe:…`: counts the streamed shards; writes no file.
fn pipe_main(a: &Args, t: std::time::Instant) -> ExitCode {
    let c = match stats::count_pipe_shards(&a.url, a.num_proc, a.quiet) {
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
