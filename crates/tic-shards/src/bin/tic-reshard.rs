//! `tic-reshard`: DataComp's `resharder.py` (with TiC's `-c/--cls-file`), deterministic and resumable.
//!
//! Exit status: 0 when nothing was lost beyond the per-sample skips resharder.py also makes
//! (counted in meta.json); 1 when input was lost (meta.json says `"complete": false`) or samples
//! were dropped for other reasons; 2 when the run failed before finishing (bad arguments, an
//! unreadable subset, another tic-reshard writing the folder, …).
//!
//! With `--json`, the run's counts go to stdout as one JSON object (also on exit 1; nothing on
//! exit 2); logs and progress stay on stderr.

use clap::Parser;
use std::process::ExitCode;
use tic_shards::{cli, reshard};

fn main() -> ExitCode {
    let args = reshard::ReshardArgs::parse();
    cli::init_logging(args.verbose, args.quiet);
    let r = reshard::run(&args);
    if let (Ok(s), true) = (&r, args.json) {
        println!("{}", s.to_json());
    }
    match r {
        Ok(s) if !s.complete() => {
            eprintln!(
                "tic-reshard: error: the output is INCOMPLETE: input lost in {} (meta.json says \"complete\": false; tic-train, tic-stats and tic-sizes refuse it without --accept-incomplete)",
                s.damaged_inputs.join(", ")
            );
            ExitCode::from(1)
        }
        Ok(s) if !s.succeeded() => {
            eprintln!(
                "tic-reshard: error: {} samples dropped ({} of them skipped as resharder.py does); see meta.json",
                s.dropped_count, s.skipped_count
            );
            ExitCode::from(1)
        }
        Ok(s) => {
            if s.skipped_count > 0 {
                eprintln!(
                    "tic-reshard: skipped {} input samples as resharder.py does (no json, unreadable json or no uid; listed in meta.json)",
                    s.skipped_count
                );
            }
            if !s.redone_shards.is_empty() {
                eprintln!(
                    "tic-reshard: wrote {} damaged output shards again: {}",
                    s.redone_shards.len(),
                    s.redone_shards.join(", ")
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tic-reshard: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
