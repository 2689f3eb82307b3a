//! `tic-redcaps-splits`: drop-in for TiC-CLIP's `dataset_creation/tic-redcaps/create_splits.py`.
use anyhow::{Context, Result};
use clap::Parser;
use std::path::PathBuf;
use tic_splits::redcaps::{self, RedcapsConfig, DEFAULT_YEARS};

/// Split RedCaps into TiC years with train/test files (TiC's tic-redcaps/create_splits.py).
///
/// Reads `{annotations-dir}/*_{year}.json` and writes `{train,test}_batch_{year}.csv`
/// (tab-separated, header `path  caption`, path `subreddit/image_id.jpg`).
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// RedCaps' annotations folder (local path or object-store URL).
    #[arg(long, default_value = "./annotations")]
    annotations_dir: PathBuf,
    /// Folder for the split files (local path or object-store URL).
    #[arg(long, default_value = "./splits")]
    output_dir: PathBuf,
    /// Years to split (comma list).
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_YEARS.map(String::from))]
    years: Vec<String>,
    #[command(flatten)]
    split: tic_splits::split::SplitArgs,
    #[command(flatten)]
    verbosity: tic_shards::cli::Verbosity,
}

fn main() -> Result<()> {
    let a = Args::parse();
    a.verbosity.init();
    // Object-store annotations are downloaded; outputs are staged locally, then uploaded.
    let annotations = tic_shards::storage::InputDir::fetch(&a.annotations_dir)?;
    let out = tic_shards::storage::OutputDir::new(&a.output_dir)?;
    let counts = redcaps::run(&RedcapsConfig {
        annotations_dir: annotations.path().to_path_buf(),
        output_dir: out.path().to_path_buf(),
        years: a.years.clone(),
        seed: a.split.seed,
        test_size: a.split.test_size,
        quiet: a.verbosity.is_quiet(),
    })
    .with_context(|| format!("splitting {}", a.annotations_dir.display()))?;
    out.finish()?;
    for c in counts {
        println!(
            "Year: {} ({} files): {} train, {} test",
            c.year, c.files, c.train, c.test
        );
    }
    Ok(())
}
