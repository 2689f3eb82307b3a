//! `tic-datacompnet-classes`: drop-in for TiC-CLIP's
//! `dataset_creation/tic-datacomp/generate_datacompnet_uid2classid.py`.
use anyhow::Result;
use clap::Parser;
use tic_shards::storage::Location;
use tic_splits::classes;
use tic_splits::evaluids::{self, DATACOMPNET_PKL, DEFAULT_BASE_URL};

/// Map every DataCompNet eval uid to its ImageNet class id (0–999), one pickle per year.
///
/// Reads `tic-datacompnet_year2uids.pkl` from --input-dir (default: --output-path) and writes
/// `uid2classid/{year}.pkl` (dict uid → class id, readable by `pickle.load`) and
/// `classnames.txt` under --output-path. The synset → class-id table ships with tic-rs.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Args {
    /// Folder (local path or object-store URL) for the outputs.
    #[arg(long)]
    output_path: String,
    /// Folder holding `tic-datacompnet_year2uids.pkl` (default: --output-path).
    #[arg(long)]
    input_dir: Option<String>,
    /// Base URL to download a missing pickle from (needs a network).
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
    let bytes = evaluids::load_input(&input, DATACOMPNET_PKL, base)?;
    let file = input.join(DATACOMPNET_PKL).to_string();
    let data = tic_shards::pickle::read_year_synset_uids(&bytes, &file)?;
    let mapping = classes::map_classes(&data, &file)?;
    if mapping.conflicts > 0 {
        tracing::warn!(
            "{} uids are listed under two different synsets of the same year; the synset \
             that sorts last wins",
            mapping.conflicts
        );
    }
    classes::write_outputs(&mapping, &out)?;
    for (year, m) in &mapping.years {
        println!(
            "Created {}/uid2classid/{year}.pkl: {}",
            a.output_path,
            m.len()
        );
    }
    Ok(())
}
