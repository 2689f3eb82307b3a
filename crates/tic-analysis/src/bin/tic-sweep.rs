//! `tic-sweep`: a budget sweep read from one multi-seed `tic-report --json` per per-step
//! budget — the oracle − cumulative-all ID gap and their compute ratio against the budget, as
//! a Markdown table, JSON and a plot. Logic in `tic_analysis::cli::sweep` and
//! `tic_analysis::sweep`; see `docs/eval.md`.

use clap::Parser;
use std::process::ExitCode;
use tic_analysis::cli::sweep::{self, SweepArgs};

fn main() -> ExitCode {
    let args = SweepArgs::parse();
    args.verbosity.init();
    match sweep::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tic-sweep: {e:#}");
            ExitCode::from(2)
        }
    }
}
