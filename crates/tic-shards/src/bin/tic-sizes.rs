//! `tic-sizes`: TiC's `add_sizes.py` — a `sizes.json` shard table per time split.

use clap::Parser;
use tic_shards::{cli, stats, storage::Location};

/// Write a `sizes.json` shard table in every time split (TiC's add_sizes.py).
///
/// Writes `sizes.json` ({"00000000.tar": n, ...}) in every split of URL (layouts URL/split/ and
/// URL/split/shard/) from its `_stats.json` files. Tar files without a stats file are named in
/// a warning (run tic-stats first). A split that is an incomplete tic-reshard output
/// (`"complete": false` in its meta.json) is refused unless --accept-incomplete.
#[derive(Parser, Debug)]
#[command(name = "tic-sizes", version)]
struct Args {
    /// Folder holding the time splits (local path or object-store URL), or a webdataset
    /// `pipe:CMD` pattern such as `pipe:cat /data/{00000000..00000011}.tar`: its shards are
    /// counted from the streams and the sizes.json table is printed on stdout (redirect it
    /// where it belongs; with --json it is the summary's "sizes").
    #[arg(long)]
    url: String,
    /// Parallel workers.
    #[arg(long, default_value_t = std::thread::available_parallelism().map_or(1, |n| n.get()))]
    num_proc: usize,
    /// Accept splits that tic-reshard marked incomplete (input lost to damaged tars).
    #[arg(long)]
    accept_incomplete: bool,
    /// Also print the counts as one JSON object on stdout: {"splits", "samples" (listed in
    /// the sizes.json files written), "missing_stats" (tar files left out)}.
    #[arg(long)]
    json: bool,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    cli::init_logging(0, 0);
    if tic_shards::pipe::is_pipe(&a.url) {
        return pipe_main(&a);
    }
    let root = Location::parse(&a.url)?;
    let s = stats::write_sizes(&root, a.num_proc, a.accept_incomplete)?;
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

/// `--url pipe:…`: counts the streamed shards and prints the sizes.json table on stdout. A shard
/// that cannot be counted is an error (the table would be wrong).
fn pipe_main(a: &Args) -> anyhow::Result<()> {
    let c = stats::count_pipe_shards(&a.url, a.num_proc, false)?;
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
