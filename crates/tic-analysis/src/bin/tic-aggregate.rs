//! `tic-aggregate`: DataComp's aggregate scores (ImageNet, ImageNet dist. shifts, VTAB,
//! Retrieval, Average) of one `eval_results.jsonl`, a drop-in for `aggregate_scores.py
//! --input`, with each mean's task count and the missing tasks named. Logic in
//! `tic_analysis::cli::aggregate` and `tic_analysis::aggregate`; see `docs/eval.md`.

use clap::Parser;
use std::process::ExitCode;
use tic_analysis::cli::aggregate::{self, AggregateArgs};

fn main() -> ExitCode {
    tic_shards::cli::init_logging(0, 0);
    let args = AggregateArgs::parse();
    aggregate::run(&args)
}
