//! `tic-sizes`: TiC's `add_sizes.py` — a `sizes.json` shard table per time split.

use clap::Parser;
use tic_shards::cli;
use tic_shards::stats::{run_tic_sizes, SizesArgs};

fn main() -> anyhow::Result<()> {
    let a = SizesArgs::parse();
    cli::init_logging(0, 0);
    run_tic_sizes(&a)
}
