//! `tic-synth-captions`: small synthetic YFCC15M / RedCaps inputs for demos and tests.
use anyhow::Result;
use clap::Parser;
use std::path::PathBuf;
use tic_splits::synth::{self, Kind};

/// Write synthetic YFCC15M or RedCaps inputs (no original script: stands in for the downloads).
///
/// Writes a `yfcc15m.csv` or RedCaps `annotations/*_{year}.json` (optionally with tiny JPEGs
/// under `images/` at the paths the splitters produce).
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Which dataset to imitate.
    #[arg(value_enum)]
    kind: Kind,
    /// Output folder (local path or object-store URL).
    #[arg(long)]
    out: PathBuf,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Number of rows / annotations.
    #[arg(long, default_value_t = 1000)]
    rows: usize,
    /// Also write a 16×16 JPEG per row under `{out}/images/`.
    #[arg(long)]
    images: bool,
    #[command(flatten)]
    verbosity: tic_shards::cli::Verbosity,
}

fn main() -> Result<()> {
    let a = Args::parse();
    a.verbosity.init();
    // An object-store --out is written locally, then uploaded.
    let out = tic_shards::storage::OutputDir::new(&a.out)?;
    match a.kind {
        Kind::Yfcc => synth::write_yfcc(out.path(), a.seed, a.rows, a.images)?,
        Kind::Redcaps => synth::write_redcaps(out.path(), a.seed, a.rows, a.images)?,
    }
    out.finish()?;
    tracing::info!(
        "wrote {} synthetic {:?} rows to {}",
        a.rows,
        a.kind,
        a.out.display()
    );
    Ok(())
}
