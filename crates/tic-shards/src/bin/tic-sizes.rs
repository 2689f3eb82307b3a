//! `tic-sizes`: TiC's `add_sizes.py` — a `sizes.json` shard table per time split.

use clap::Parser;
use tic_shards::{cli, stats, storage::Location};

/// Write `sizes.json` ({"00000000.tar": n, ...}) in every split of URL (layouts URL/split/ and
/// URL/split/shard/) from its `_stats.json` files.
#[derive(Parser, Debug)]
#[command(name = "tic-sizes", version, about)]
struct Args {
    /// Folder holding the time splits (local path or object-store URL).
    #[arg(long)]
    url: String,
    /// Parallel workers.
    #[arg(long, default_value_t = std::thread::available_parallelism().map_or(1, |n| n.get()))]
    num_proc: usize,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    cli::init_logging(0, 0);
    let root = Location::parse(&a.url)?;
    let (splits, samples) = stats::write_sizes(&root, a.num_proc)?;
    eprintln!("tic-sizes: wrote sizes.json in {splits} splits ({samples} samples)");
    Ok(())
}
