//! `tic-reshard`: DataComp's `resharder.py` (with TiC's `-c/--cls-file`), deterministic and resumable.

use clap::Parser;
use std::process::ExitCode;
use tic_shards::{cli, reshard};

fn main() -> ExitCode {
    let args = reshard::ReshardArgs::parse();
    cli::init_logging(args.verbose, args.quiet);
    match reshard::run(&args) {
        Ok(s) if s.dropped_count > 0 || s.error_count > 0 => {
            eprintln!(
                "tic-reshard: finished with {} errors ({} samples dropped); see meta.json",
                s.error_count, s.dropped_count
            );
            ExitCode::from(1)
        }
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tic-reshard: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
