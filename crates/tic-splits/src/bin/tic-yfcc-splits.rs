//! `tic-yfcc-splits`: drop-in for TiC-CLIP's `dataset_creation/tic-yfcc15m/create_splits.py`.
use anyhow::{Context, Result};
use clap::Parser;
use std::path::PathBuf;
use tic_splits::yfcc::{self, YfccConfig};

/// Split YFCC15M into TiC year groups with train/test files (TiC's tic-yfcc15m/create_splits.py).
///
/// Streams `yfcc15m.csv` (columns key, dateuploaded, title, description, usertags, …), builds
/// captions `{title}. {description}. {usertags}` cleaned as the original (URL-unquote-plus,
/// ftfy, HTML tags stripped, 500 characters) and paths `key[:3]/key[3:6]/key.jpg`, groups rows
/// by UTC upload year (2004–08, 2009–10, 2011–12, 2013–14) and writes
/// `{train,test}_batch_{0..3}.csv` (tab-separated, header `path  caption`).
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The YFCC15M metadata CSV (local path or object-store URL).
    #[arg(long, default_value = "./yfcc15m.csv")]
    input: PathBuf,
    /// Folder for the split files (local path or object-store URL).
    #[arg(long, default_value = "./splits")]
    output_dir: PathBuf,
    #[command(flatten)]
    split: tic_splits::split::SplitArgs,
    #[command(flatten)]
    verbosity: tic_shards::cli::Verbosity,
}

fn main() -> Result<()> {
    let a = Args::parse();
    a.verbosity.init();
    // An object-store input is downloaded; outputs are staged locally, then uploaded.
    let input = tic_shards::storage::fetch_file(&a.input)?;
    let out = tic_shards::storage::OutputDir::new(&a.output_dir)?;
    let s = yfcc::run(&YfccConfig {
        input: input.path().to_path_buf(),
        output_dir: out.path().to_path_buf(),
        seed: a.split.seed,
        test_size: a.split.test_size,
        quiet: a.verbosity.is_quiet(),
    })
    .with_context(|| format!("splitting {}", a.input.display()))?;
    out.finish()?;
    println!("{} not mapped paths", s.unmapped);
    for g in 0..4 {
        println!("batch {g}: {} train, {} test", s.train[g], s.test[g]);
    }
    Ok(())
}
