//! `tic-train`: DataComp's `train.py` (with the TiC patch) in Rust, plus the TiC-CLIP
//! continual strategies; one process, or one rank of an `mpirun` / `srun` job (built with
//! `--features mpi`). See docs/train.md and docs/distributed.md.

use std::process::ExitCode;

use clap::Parser;
use tic_train::args::TrainArgs;

fn main() -> ExitCode {
    let args = TrainArgs::parse();
    tic_shards::cli::init_logging(0, u8::from(args.quiet));
    tic_kernels::heap::reuse_freed_buffers();
    let result = tic_dist::init_host().and_then(|host| tic_train::setup::run(&args, host));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tic-train: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
