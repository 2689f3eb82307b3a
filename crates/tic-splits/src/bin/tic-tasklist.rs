//! `tic-tasklist`: drop-in for TiC-CLIP's `dataset_creation/tic-datacomp/generate_tasklist.py`.
use anyhow::Result;
use clap::Parser;
use tic_splits::tasklist::cli::{self, TaskListArgs};

fn main() -> Result<()> {
    let a = TaskListArgs::parse();
    a.verbosity.init();
    cli::run(&a)
}
