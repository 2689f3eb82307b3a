//! `tic-report`: the Markdown report of a TiC experiment (tables, findings, matrices, plots,
//! training runs) from `tic-metrics`' output. Logic in `tic_analysis::cli::report` and
//! `tic_analysis::report`; see `docs/eval.md`.

use clap::Parser;
use std::process::ExitCode;
use tic_analysis::cli::report::{self, ReportArgs};

fn main() -> ExitCode {
    let args = ReportArgs::parse();
    args.verbosity.init();
    report::run(&args)
}
