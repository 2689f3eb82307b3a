//! The command line of `tic-fuzz`: `smoke` (every target in child processes, what
//! `make fuzz-smoke` runs), `run` (one target in this process: the child), `replay` (inputs
//! under the cap) and `list`.

use crate::runner::{self, RunSpec};
use crate::smoke::{smoke, SmokeOpts};
use crate::targets::{find, TARGETS};
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Fuzz tic-rs' readers of untrusted input on the stable toolchain, each target in a child
/// process under a memory cap (docs/fuzzing.md).
#[derive(Parser, Debug)]
#[command(name = "tic-fuzz", version)]
pub struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Every target (or those named): replay its seeds and fuzz/regressions/<target>/, then
    /// mutated inputs for --seconds; fails naming each failing input, saved under --out.
    Smoke(SmokeOpts),
    /// One target in this process (what `smoke` starts for each target).
    Run {
        /// The target.
        target: String,
        #[arg(long, default_value_t = 6.0)]
        seconds: f64,
        #[arg(long, default_value_t = 512)]
        mem_mb: u64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// The memory-mapped file the running input is copied to.
        #[arg(long)]
        input_log: PathBuf,
        /// Regression inputs (files or folders).
        #[arg(long)]
        corpus: Vec<PathBuf>,
        #[arg(long, default_value = ".")]
        root: PathBuf,
    },
    /// Runs the given inputs through a target under the memory cap (after its seeds).
    Replay {
        /// The target.
        target: String,
        /// Input files.
        inputs: Vec<PathBuf>,
        #[arg(long, default_value_t = 512)]
        mem_mb: u64,
        #[arg(long, default_value = ".")]
        root: PathBuf,
    },
    /// Names every target and what it fuzzes.
    List,
}

fn run_child(spec: RunSpec, mem_mb: u64) -> Result<()> {
    runner::set_memory_cap((mem_mb as usize) << 20)?;
    let start = std::time::Instant::now();
    let (replayed, n) = runner::run(&spec)?;
    println!(
        "{}: {replayed} seed and regression inputs, then {n} mutated inputs in {:.1} s: no failure",
        spec.target.name,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Parses the command line and runs it.
pub fn main(cli: Cli) -> Result<()> {
    let target = |name: &str| {
        find(name).with_context(|| format!("no fuzz target {name:?} (see `tic-fuzz list`)"))
    };
    match cli.cmd {
        Cmd::Smoke(opts) => smoke(&opts),
        Cmd::Run {
            target: name,
            seconds,
            mem_mb,
            seed,
            input_log,
            corpus,
            root,
        } => {
            let spec = RunSpec {
                target: target(&name)?,
                seconds,
                seed,
                input_log,
                corpus,
                root,
            };
            run_child(spec, mem_mb)
        }
        Cmd::Replay {
            target: name,
            inputs,
            mem_mb,
            root,
        } => {
            let input_log =
                std::env::temp_dir().join(format!("tic-fuzz-replay-{}.input", std::process::id()));
            let spec = RunSpec {
                target: target(&name)?,
                seconds: 0.0,
                seed: 0,
                input_log: input_log.clone(),
                corpus: inputs,
                root,
            };
            let r = run_child(spec, mem_mb);
            let _ = std::fs::remove_file(input_log);
            r
        }
        Cmd::List => {
            for t in TARGETS {
                println!("{:<16} {}", t.name, t.about);
            }
            Ok(())
        }
    }
}
