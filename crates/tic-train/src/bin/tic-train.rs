//! `tic-train`: DataComp's `train.py` (with the TiC patch) in Rust, plus the TiC-CLIP
//! continual strategies; one process, or one rank of an `mpirun` / `srun` job (built with
//! `--features mpi`). See docs/train.md and docs/distributed.md.

use std::process::ExitCode;

use clap::Parser;
use tic_train::args::TrainArgs;
use tic_train::preempt::Outcome;

fn main() -> ExitCode {
    let args = TrainArgs::parse();
    tic_shards::cli::init_logging(0, u8::from(args.quiet));
    tic_kernels::heap::reuse_freed_buffers();
    let result = tic_dist::init_host().and_then(|host| tic_train::setup::run(&args, host));
    // Exit statuses (docs/train.md): 0 finished, 1 failed, 2 bad command line (clap),
    // 75 preempted with its state saved (rerun to resume), 128 + N a second signal N.
    match result {
        Ok(outcome) => {
            if let Outcome::Preempted(p) = &outcome {
                eprintln!(
                    "tic-train: preempted at step {}/{}: state saved, rerun the same command to resume",
                    p.step, p.total_steps
                );
            }
            ExitCode::from(outcome.exit_status())
        }
        Err(e) => {
            eprintln!("tic-train: error: {e:#}");
            ExitCode::from(tic_train::preempt::EXIT_FAILURE)
        }
    }
}
