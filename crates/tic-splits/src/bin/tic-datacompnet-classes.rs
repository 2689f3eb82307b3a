//! `tic-datacompnet-classes`: drop-in for TiC-CLIP's
//! `dataset_creation/tic-datacomp/generate_datacompnet_uid2classid.py`.
use anyhow::Result;
use clap::Parser;
use tic_shards::pickle::DATACOMPNET_PKL;
use tic_splits::classes;
use tic_splits::evaluids::UidSourceArgs;

/// Map DataCompNet eval uids to ImageNet class ids (TiC's generate_datacompnet_uid2classid.py).
///
/// One pickle per year, class ids 0–999.
///
/// Reads `tic-datacompnet_year2uids.pkl` from --input-dir (default: --output-path) and writes
/// `uid2classid/{year}.pkl` (dict uid → class id, readable by `pickle.load`) and
/// `classnames.txt` under --output-path. The synset → class-id table ships with tic-rs.
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
    let (bytes, file) = a.src.load(DATACOMPNET_PKL)?;
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
            a.src.output_path,
            m.len()
        );
    }
    Ok(())
}
