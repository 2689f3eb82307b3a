//! `tic-download`: DataComp's `download_upstream.py` (+ img2dataset 1.40) — the pool download.

use clap::Parser;
use std::process::ExitCode;
use tic_download::DownloadArgs;

fn main() -> ExitCode {
    let args = DownloadArgs::parse();
    tic_shards::cli::init_logging(0, u8::from(args.quiet));
    match tic_download::run(&args) {
        Ok(summary) if summary.failed_shards == 0 => ExitCode::SUCCESS,
        Ok(summary) => {
            eprintln!(
                "tic-download: {} shard(s) failed (see above); rerun the same command to redo them",
                summary.failed_shards
            );
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("tic-download: {e:#}");
            ExitCode::from(2)
        }
    }
}
