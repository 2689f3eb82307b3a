//! `tic-eval-uids`: TiC's eval uid pickles → per-year sorted, unique `u8,u8` npy files.
//!
//! Mirrors `generate_eval_uids.py`: `eval/retrieval/{year}.npy` from
//! `tic-datacomp_retrieval_evals_year2uids.pkl`, `eval/datacompnet/{year}.npy` from
//! `tic-datacompnet_year2uids.pkl` (all synsets of a year together) and `eval/alluids.npy`
//! (both together). Every array is sorted and deduplicated like `uids_str_to_np`.
use anyhow::{bail, Context, Result};
use tic_shards::npy::write_uids;
use tic_shards::pickle::{read_year_synset_uids, read_year_uids};
use tic_shards::storage::Location;
use tic_shards::uid::{sort_unique, Uid};

/// Where TiC-CLIP publishes both pickles.
pub const DEFAULT_BASE_URL: &str =
    "https://docs-assets.developer.apple.com/ml-research/datasets/tic-clip/";

/// The flags both eval-uid tools share: where the pickles are, where outputs go, whether to
/// download a missing pickle (clap `#[command(flatten)]`).
#[derive(clap::Args, Debug, Clone)]
pub struct UidSourceArgs {
    /// Folder (local path or object-store URL) for the outputs.
    #[arg(long)]
    pub output_path: String,
    /// Folder holding the input pickles (default: --output-path, where the original downloads
    /// them).
    #[arg(long)]
    pub input_dir: Option<String>,
    /// Base URL to download missing pickles from (needs a network).
    #[arg(long, default_value = DEFAULT_BASE_URL)]
    pub download_base_url: String,
    /// Never download; fail with a message naming the missing file instead.
    #[arg(long)]
    pub no_download: bool,
}

impl UidSourceArgs {
    /// The output folder.
    pub fn output(&self) -> Result<Location> {
        Location::parse(&self.output_path)
    }

    /// The input folder (--input-dir, else --output-path).
    pub fn input(&self) -> Result<Location> {
        Location::parse(self.input_dir.as_deref().unwrap_or(&self.output_path))
    }

    /// The bytes of pickle `name` from the input folder, downloaded first unless
    /// --no-download; also its display name for messages.
    pub fn load(&self, name: &str) -> Result<(Vec<u8>, String)> {
        let input = self.input()?;
        let base = (!self.no_download).then_some(self.download_base_url.as_str());
        let bytes = load_input(&input, name, base)?;
        Ok((bytes, input.join(name).to_string()))
    }
}

/// Reads `name` from `input_dir`; when it is missing and `download_base` is set, downloads
/// `{download_base}{name}` (keeping a copy in `input_dir` when that is local, as the original's
/// `wget -nc`). Without a network the error says which file is missing and where to put it.
pub fn load_input(
    input_dir: &Location,
    name: &str,
    download_base: Option<&str>,
) -> Result<Vec<u8>> {
    let loc = input_dir.join(name);
    if loc.exists().with_context(|| format!("checking {loc}"))? {
        return loc.read();
    }
    let Some(base) = download_base else {
        bail!(
            "{name} not found in {input_dir}: put the file there (it is published at \
             {DEFAULT_BASE_URL}{name}) or pass --download-base-url"
        );
    };
    let url = format!("{}/{}", base.trim_end_matches('/'), name);
    tracing::info!("{name} not in {input_dir}; downloading {url}");
    let bytes = Location::parse(&url)
        .and_then(|l| l.read())
        .with_context(|| {
            format!(
                "{name} not found in {input_dir} and downloading {url} failed (no network?): \
                 download it elsewhere and put it at {loc}"
            )
        })?;
    if input_dir.as_local().is_some() {
        loc.write(&bytes)?;
    }
    Ok(bytes)
}

/// Row counts written, as the original prints them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Sum over years of unique retrieval uids per year.
    pub retrieval: usize,
    /// Sum over years of unique DataCompNet uids per year.
    pub datacompnet: usize,
    /// Unique uids over both pickles.
    pub all: usize,
    /// Years written for retrieval.
    pub retrieval_years: Vec<String>,
    /// Years written for DataCompNet.
    pub datacompnet_years: Vec<String>,
}

fn sorted(mut v: Vec<Uid>) -> Vec<Uid> {
    sort_unique(&mut v);
    v
}

/// Decodes both pickles and writes every npy under `output`. `*_name` name the inputs in errors.
pub fn generate(
    retrieval: &[u8],
    retrieval_name: &str,
    datacompnet: &[u8],
    datacompnet_name: &str,
    output: &Location,
) -> Result<Summary> {
    let ret = read_year_uids(retrieval, retrieval_name)?;
    let dcn = read_year_synset_uids(datacompnet, datacompnet_name)?;
    let mut s = Summary::default();
    let mut all: Vec<Uid> = Vec::new();
    for (year, uids) in &ret {
        let u = sorted(uids.clone());
        s.retrieval += u.len();
        output
            .join(&format!("eval/retrieval/{year}.npy"))
            .write(&write_uids(&u))?;
        all.extend_from_slice(&u);
        s.retrieval_years.push(year.clone());
    }
    for (year, synsets) in &dcn {
        let u = sorted(synsets.values().flatten().copied().collect());
        s.datacompnet += u.len();
        output
            .join(&format!("eval/datacompnet/{year}.npy"))
            .write(&write_uids(&u))?;
        all.extend_from_slice(&u);
        s.datacompnet_years.push(year.clone());
    }
    let all = sorted(all);
    s.all = all.len();
    output.join("eval/alluids.npy").write(&write_uids(&all))?;
    Ok(s)
}
