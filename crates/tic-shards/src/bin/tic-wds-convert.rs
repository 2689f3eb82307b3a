//! `tic-wds-convert`: TiC's `convert_wds.sh` — resharder (or `tic-make-tars`) output to
//! CLIP_benchmark's layout.

use clap::Parser;
use tic_shards::convert::{convert, DatasetType};
use tic_shards::{cli, storage::Location};

/// Convert a resharded folder, in place, to CLIP_benchmark's layout (TiC's convert_wds.sh).
///
/// Converts a tic-reshard/resharder.py output folder to the WebDataset layout that
/// CLIP_benchmark reads: N.tar and N.json (no zero padding), nshards.txt and count.txt (from
/// meta.json), dataset_type.txt, and for classification the ImageNet classnames.txt and
/// zeroshot_classification_templates.txt shipped with tic-rs. Safe to rerun.
///
/// A folder without meta.json but with a sizes.json (tic-make-tars --datacomp-compat output,
/// e.g. a TiC-YFCC15M test split) converts too: its shards are numbered 0.tar, 1.tar, … in
/// name order and the counts come from sizes.json.
#[derive(Parser, Debug)]
#[command(name = "tic-wds-convert", version)]
struct Args {
    /// The resharder or tic-make-tars output folder (local path or object-store URL).
    path: String,
    /// Dataset type.
    #[arg(value_enum)]
    kind: DatasetType,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    cli::init_logging(0, 0);
    let dir = Location::parse(&a.path)?;
    let s = convert(&dir, a.kind)?;
    eprintln!(
        "tic-wds-convert: {dir}: {} shards ({} renamed now), {} samples, type {}",
        s.nshards,
        s.renamed,
        s.count,
        a.kind.as_str()
    );
    Ok(())
}
