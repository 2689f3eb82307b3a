//! `tic-eval-uids`: drop-in for TiC-CLIP's `dataset_creation/tic-datacomp/generate_eval_uids.py`.
use anyhow::Result;
use clap::Parser;
use tic_shards::storage::Location;
use tic_splits::evaluids::{self, DATACOMPNET_PKL, DEFAULT_BASE_URL, RETRIEVAL_PKL};

/// Turn TiC's eval uid pickles into per-year sorted, unique uid arrays (`.npy`, dtype `u8,u8`).
///
/// Reads `tic-datacomp_retrieval_evals_year2uids.pkl` and `tic-datacompnet_year2uids.pkl` from
/// --input-dir (default: --output-path, where the original downloads them) and writes
/// `eval/retrieval/{year}.npy`, `eval/datacompnet/{year}.npy` and `eval/alluids.npy`.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Args {
    /// Folder (local path or object-store URL) for the `eval/` arrays.
    #[arg(long)]
    output_path: String,
    /// Folder holding the two pickles (default: --output-path).
    #[arg(long)]
    input_dir: Option<String>,
    /// Base URL to download missing pickles from (needs a network).
    #[arg(long, default_value = DEFAULT_BASE_URL)]
    download_base_url: String,
    /// Never download; fail with a message naming the missing file instead.
    #[arg(long)]
    no_download: bool,
    #[command(flatten)]
    verbosity: tic_shards::cli::Verbosity,
}

fn main() -> Result<()> {
    let a = Args::parse();
    a.verbosity.init();
    let out = Location::parse(&a.output_path)?;
    let input = Location::parse(a.input_dir.as_deref().unwrap_or(&a.output_path))?;
    let base = (!a.no_download).then_some(a.download_base_url.as_str());
    let ret = evaluids::load_input(&input, RETRIEVAL_PKL, base)?;
    let dcn = evaluids::load_input(&input, DATACOMPNET_PKL, base)?;
    let s = evaluids::generate(
        &ret,
        &input.join(RETRIEVAL_PKL).to_string(),
        &dcn,
        &input.join(DATACOMPNET_PKL).to_string(),
        &out,
    )?;
    println!(
        "Created {}/eval/retrieval/<year>.npy: {}",
        a.output_path, s.retrieval
    );
    println!(
        "Created {}/eval/datacompnet/<year>.npy: {}",
        a.output_path, s.datacompnet
    );
    println!("Created {}/eval/alluids.npy: {}", a.output_path, s.all);
    Ok(())
}
