//! `tic-metrics`: the TiC-CLIP dynamic evaluation over several runs: T×T matrices, transfer
//! metrics, tables and plots. Logic in `tic_analysis::cli::metrics`; see `docs/eval.md`.

use anyhow::Result;
use clap::Parser;
use tic_analysis::cli::metrics::{self, MetricsArgs};

fn main() -> Result<()> {
    metrics::init_logging();
    let args = MetricsArgs::parse();
    metrics::run(&args)
}
