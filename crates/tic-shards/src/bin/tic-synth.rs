//! `tic-synth`: the embedded synthetic default — a time-drifting DataComp-like pool and TiC UID files.

use clap::Parser;
use tic_shards::storage::OutputDir;
use tic_shards::{cli, synth};

fn main() -> anyhow::Result<()> {
    let mut args = synth::SynthArgs::parse();
    cli::init_logging(0, u8::from(args.quiet));
    let t = std::time::Instant::now();
    // An object-store --out is written locally, then uploaded.
    let out = OutputDir::new(&args.out)?;
    let shown = args.out.display().to_string();
    args.out = out.path().to_path_buf();
    let s = synth::run(&args)?;
    out.finish()?;
    let per_year: Vec<String> = s
        .per_year
        .iter()
        .map(|(y, n)| format!("{y}: {n}"))
        .collect();
    eprintln!(
        "tic-synth: {} samples in {} shards ({:.1} MB) under {} in {:.2}s; per year {}",
        args.num_samples,
        args.num_shards,
        s.bytes as f64 / 1e6,
        shown,
        t.elapsed().as_secs_f64(),
        per_year.join(", ")
    );
    Ok(())
}
