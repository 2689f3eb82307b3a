//! `tic-eval-uids`: drop-in for TiC-CLIP's `dataset_creation/tic-datacomp/generate_eval_uids.py`.
use anyhow::Result;
use clap::Parser;
use tic_shards::pickle::{DATACOMPNET_PKL, RETRIEVAL_PKL};
use tic_splits::evaluids::{self, UidSourceArgs};

/// Turn TiC's eval uid pickles into per-year uid arrays (TiC's generate_eval_uids.py).
///
/// The arrays are sorted and unique, `.npy` of dtype `u8,u8`.
///
/// Reads `tic-datacomp_retrieval_evals_year2uids.pkl` and `tic-datacompnet_year2uids.pkl` from
/// --input-dir (default: --output-path, where the original downloads them) and writes
/// `eval/retrieval/{year}.npy`, `eval/datacompnet/{year}.npy` and `eval/alluids.npy`.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(flatten)]
    src: UidSourceArgs,
    #[command(flatten)]
    verbosity: tic_shards::cli::Verbosity,
}

fn main() -> Result<()> {
    let a = Args::parse();
    a.verbosity.init();
    let out = a.src.output()?;
    let (ret, ret_name) = a.src.load(RETRIEVAL_PKL)?;
    let (dcn, dcn_name) = a.src.load(DATACOMPNET_PKL)?;
    let s = evaluids::generate(&ret, &ret_name, &dcn, &dcn_name, &out)?;
    println!(
        "Created {}/eval/retrieval/<year>.npy: {}",
        a.src.output_path, s.retrieval
    );
    println!(
        "Created {}/eval/datacompnet/<year>.npy: {}",
        a.src.output_path, s.datacompnet
    );
    println!("Created {}/eval/alluids.npy: {}", a.src.output_path, s.all);
    Ok(())
}
