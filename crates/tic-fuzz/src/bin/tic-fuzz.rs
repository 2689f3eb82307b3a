//! `tic-fuzz`: fuzzing of the readers of untrusted input on the stable toolchain
//! (`tic_fuzz::cli`; docs/fuzzing.md).

use clap::Parser;

/// Every allocation is counted against the memory cap of `tic-fuzz run`.
#[global_allocator]
static ALLOC: tic_fuzz::runner::CappedAlloc = tic_fuzz::runner::CappedAlloc;

fn main() -> anyhow::Result<()> {
    tic_fuzz::cli::main(tic_fuzz::cli::Cli::parse())
}
