//! `tic-eval`: DataComp's `evaluate.py` (with the TiC patch) for tic-rs models.
//!
//! Evaluates one model on every task of a `tasklist.yml` (CLIP_benchmark WebDataset sets),
//! appends DataComp records to `{output_dir}/eval_results.jsonl`, skips tasks already done and
//! prints a summary table. Built with `--features mpi`, `mpirun -np W tic-eval …` spreads the
//! tasks over the ranks ([`tic_eval::spread`]). See `docs/eval.md`.
//!
//! The command line is [`tic_eval::args::EvalArgs`], the run [`tic_eval::run`].

use clap::Parser;
use tic_eval::args::EvalArgs;

fn main() {
    let args = EvalArgs::parse();
    tic_kernels::heap::reuse_freed_buffers();
    // The job's communicator (MPI) is finalised inside `main_status`, before the process exits.
    std::process::exit(tic_eval::run::main_status(&args));
}
