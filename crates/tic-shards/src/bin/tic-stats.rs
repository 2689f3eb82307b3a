//! `tic-stats`: TiC's `generate_stats.py` — `{name}_stats.json` for every shard of every time split.

use clap::Parser;
use std::process::ExitCode;
use tic_shards::cli;
use tic_shards::stats::{run_tic_stats, StatsArgs};

fn main() -> ExitCode {
    let a = StatsArgs::parse();
    cli::init_logging(0, u8::from(a.quiet));
    run_tic_stats(&a)
}
