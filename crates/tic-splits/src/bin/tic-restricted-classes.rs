//! `tic-restricted-classes`: drop-in for TiC-CLIP's
//! `dataset_creation/tic-datacomp/imagenet_restricted_classes.py`.
use anyhow::Result;
use clap::Parser;
use tic_shards::storage::Location;
use tic_splits::restricted::{self, DEFAULT_ROOTS};
use tic_splits::wordnet::{WordNet, DEFAULT_DIR};

/// Group ImageNet class ids under WordNet hypernyms (TiC's imagenet_restricted_classes.py).
///
/// The groups give the restricted ImageNet accuracy.
///
/// For each root name, the ImageNet-1k classes whose synset lies in the hyponym closure of any
/// synset of that name. Prints each group as the original does (a Python list, here sorted) and
/// writes `restricted_classes.json` (group → sorted class ids) under --output-path.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Folder (local path or object-store URL) for `restricted_classes.json`.
    #[arg(long)]
    output_path: String,
    /// WordNet 3.0 database folder (Debian: `apt-get install wordnet-base`).
    #[arg(long, default_value = DEFAULT_DIR)]
    wordnet_dir: String,
    /// Comma list of root names (default: the original's eleven).
    #[arg(long, value_delimiter = ',')]
    roots: Option<Vec<String>>,
    #[command(flatten)]
    verbosity: tic_shards::cli::Verbosity,
}

fn main() -> Result<()> {
    let a = Args::parse();
    a.verbosity.init();
    let wn = WordNet::open(&a.wordnet_dir)?;
    let roots: Vec<String> = a
        .roots
        .clone()
        .unwrap_or_else(|| DEFAULT_ROOTS.iter().map(|s| s.to_string()).collect());
    let groups = restricted::groups(&wn, &roots)?;
    for (root, ids) in &groups {
        if ids.is_empty() {
            tracing::warn!("root {root:?}: no ImageNet class under it (is it a WordNet lemma?)");
        }
        println!("{}", restricted::python_list(ids));
    }
    Location::parse(&a.output_path)?
        .join("restricted_classes.json")
        .write(restricted::to_json(&groups).as_bytes())?;
    Ok(())
}
