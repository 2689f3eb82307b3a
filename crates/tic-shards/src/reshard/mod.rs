//! The TiC resharder: select the samples of a WebDataset pool whose uid is in a subset file
//! and write them as new shards (DataComp `resharder.py` with the TiC `-c/--cls-file` patch).
//!
//! # Determinism
//! The output depends only on the inputs, never on `-j`: input shards are scanned in parallel
//! (pass 1: tar headers and `json` members only), the matches are laid out in input order
//! (input shard, then sample, then copy `j`), and output shard `o` receives matches
//! `[o·S, (o+1)·S)` for `S = --shard-size` (pass 2, parallel over output shards). Tar headers
//! carry the input members' mtimes, never the write time. `--shuffle-bufsize B > 0` shuffles
//! inside each output shard with a buffer of `B` samples, seeded by `--shuffle-seed` and the
//! output shard index.
//!
//! # Keys
//! A uid listed `k` times in the subset is written `k` times, as `{uid}-0 … {uid}-(k-1)`. A uid
//! found in several input samples keeps every copy under unique keys: the numbering continues
//! (`{uid}-k …`) in input order, so every output shard reads back with webdataset.
//!
//! # Completion protocol
//! `meta.json` is the completion marker (Make targets depend on it): it is the first thing
//! invalidated and the last thing written. A run locks the output folder ([`crate::lock`]: a
//! second writer fails at once), writes `.tic-reshard-plan.json` (a fingerprint of inputs and
//! settings), removes any old `meta.json` *before* it touches a shard, writes every output file
//! under a temporary name and renames it (a shard's stats file after its tar, so a shard is
//! finished when its stats file exists), then writes `meta.json` with each shard's sample count,
//! byte size and CRC-32, and finally removes the plan file and the lock.
//!
//! Rerunning the same command after a crash resumes: every shard kept from the interrupted run is
//! checked (its tar reads back with exactly the expected samples and ends with the end-of-archive
//! blocks, its stats file says the expected count) and rewritten when it fails the check; the
//! result is byte-identical to an uninterrupted run. Rerunning a finished command checks every
//! shard's size against `meta.json` (and its CRC-32 with `--verify`); damaged or missing shards
//! are named and written again, otherwise nothing is done.
//!
//! # Exit status
//! Samples that `resharder.py` also skips (no json member, unreadable json, no or malformed
//! uid) are counted (`skipped_count`) and listed, and the run succeeds. Lost input (an
//! unreadable, truncated or corrupt input shard: its tail is lost) makes the output incomplete:
//! `meta.json` says `"complete": false` and names the `damaged_inputs`, and the run fails, as it
//! does for samples dropped for other reasons (a uid without a class in `-c`, a repeated member).
//!
//! # Modules
//! [`run`] reads everything first (`input`: subset, class map, input shard names), then runs
//! pass 1 (`scan`: matches per input shard and the counts), settles what the output folder
//! already holds (`resume`: completion protocol, checks of kept shards), runs pass 2 (`copy`:
//! output shards), and writes the completion marker (`meta`: `meta.json`, plan fingerprint,
//! stats files).

mod copy;
mod input;
mod meta;
mod resume;
mod scan;

use crate::lock::DirLock;
use crate::shardfmt::{ShardFormat, DATACOMP_SHARD_FORMAT, DATACOMP_STATS_FORMAT};
use crate::storage::{Location, STDIO};
use crate::uid::Uid;
use anyhow::{bail, Result};
use clap::Parser;
use input::{list_input_shards, load_shard_table, read_classes, read_subset, Subset};
use resume::OutputState;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Instant;
use tracing::info;

pub use meta::{check_complete, ReshardMeta, ShardRecord, META_FILE};

/// Name of the in-progress plan file in the output folder.
pub const PLAN_FILE: &str = ".tic-reshard-plan.json";

/// Command-line arguments of `tic-reshard` (flag names of DataComp's `resharder.py`).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "tic-reshard",
    version,
    about = "Keep the pool samples whose uid is in a subset file, as new shards (DataComp's resharder.py)",
    long_about = "Keep the pool samples whose uid is in a subset file, as new shards (DataComp's resharder.py)\n\n\
A drop-in for DataComp's resharder.py with TiC-CLIP's -c/--cls-file patch.\n\n\
Reads input shards (local folder or s3://, gs://, az://, http(s):// URL), keeps every sample whose \
json `uid` is listed in the subset file (numpy .npy of dtype u8,u8 or raw 16-byte records; a uid \
listed k times is written k times as {uid}-0..{uid}-(k-1)), and writes output shards of at most \
--shard-size samples, each with a {\"successes\": n} stats file, plus meta.json and sample_ids.npy.\n\n\
Output is deterministic (independent of -j): matches are laid out in input order and cut into \
consecutive shards. Reruns of an interrupted command resume; existing unrelated output is refused \
unless --overwrite."
)]
pub struct ReshardArgs {
    /// Input folder of shards (local path or object-store URL).
    #[arg(short = 'i', long)]
    pub input_dir: String,
    /// Output folder (created if missing).
    #[arg(short = 'o', long)]
    pub output_dir: String,
    /// Subset file: .npy of dtype u8,u8 (uid high/low 64 bits) or, under a name not ending in
    /// .npy, raw 16-byte records; sorted. `-`: standard input (an .npy when it starts with the
    /// numpy magic, raw records otherwise).
    #[arg(short = 's', long)]
    pub subset_file: String,
    /// Pickle of dict uid -> class id; adds a `cls` member (ASCII decimal) to every sample.
    /// `-`: standard input (not together with `-s -`).
    #[arg(short = 'c', long)]
    pub cls_file: Option<String>,
    /// Number of input shards (default: every shard matching --shard-format from --first-shard).
    #[arg(short = 'n', long)]
    pub num_shards: Option<u64>,
    /// Index of the first input shard.
    #[arg(long, default_value_t = 0)]
    pub first_shard: u64,
    /// Worker threads (default: number of CPUs).
    #[arg(short = 'j', long)]
    pub num_workers: Option<usize>,
    /// Maximum number of samples per output shard.
    #[arg(long, default_value_t = 10000)]
    pub shard_size: usize,
    /// Input shard names, in Python str.format syntax.
    #[arg(long, default_value = DATACOMP_SHARD_FORMAT)]
    pub shard_format: String,
    /// Output shard names, in Python str.format syntax.
    #[arg(long, default_value = DATACOMP_SHARD_FORMAT)]
    pub output_shard_format: String,
    /// Input shard stats files, in Python str.format syntax.
    #[arg(long, default_value = DATACOMP_STATS_FORMAT)]
    pub shard_stats_format: String,
    /// Output shard stats files, in Python str.format syntax.
    #[arg(long, default_value = DATACOMP_STATS_FORMAT)]
    pub output_shard_stats_format: String,
    /// JSON table of input shard sizes, relative to the input folder.
    #[arg(long, default_value = crate::counts::SIZES_FILE)]
    pub shard_table: String,
    /// Also write the output shards' size table (this name) into the output folder.
    #[arg(long)]
    pub write_shard_table: bool,
    /// Shuffle samples inside each output shard with a buffer of this many samples (0: off).
    #[arg(long, default_value_t = 0)]
    pub shuffle_bufsize: usize,
    /// Seed of --shuffle-bufsize shuffling.
    #[arg(long, default_value_t = 0)]
    pub shuffle_seed: u64,
    /// Count what would be written, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Replace whatever the output folder holds.
    #[arg(long)]
    pub overwrite: bool,
    /// On a rerun, also check every finished output shard's CRC-32 against meta.json (sizes
    /// are always checked); damaged shards are written again.
    #[arg(long)]
    pub verify: bool,
    /// Print the run's counts (those of meta.json) as one JSON object on stdout; logs stay on
    /// stderr.
    #[arg(long)]
    pub json: bool,
    /// More logging (repeatable).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less logging (repeatable).
    #[arg(short = 'q', long = "quiet", action = clap::ArgAction::Count)]
    pub quiet: u8,
}

/// Counts of a finished (or dry) run, as recorded in `meta.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReshardSummary {
    /// Input samples examined (with a readable json uid).
    pub processed_count: u64,
    /// Output samples (copies included).
    pub output_count: u64,
    /// Output shards.
    pub output_shard_count: u64,
    /// Input samples dropped (skipped as resharder.py does, or for other errors).
    pub dropped_count: u64,
    /// Of those, samples that resharder.py also skips (no json member, unreadable json, no or
    /// malformed uid): these alone do not make the run fail.
    pub skipped_count: u64,
    /// Input shards that could not be read to their end (missing, truncated or corrupt): their
    /// samples after the damage are lost and the output is incomplete.
    pub damaged_inputs: Vec<String>,
    /// Errors met (bad samples, corrupt shards, missing shards).
    pub error_count: u64,
    /// Distinct subset uids not found in the input.
    pub not_found_count: u64,
    /// Bytes of input shards.
    pub input_bytes: u64,
    /// True when the output was already complete and nothing was done.
    pub already_complete: bool,
    /// Finished output shards found damaged (missing, wrong size or checksum) and written again.
    pub redone_shards: Vec<String>,
}

impl ReshardSummary {
    /// False when input data was lost (`"complete": false` in `meta.json`).
    pub fn complete(&self) -> bool {
        self.damaged_inputs.is_empty()
    }

    /// True when the run lost nothing that resharder.py would not also skip: the output is
    /// complete and every dropped sample is a resharder.py skip. `tic-reshard` exits 0 then.
    pub fn succeeded(&self) -> bool {
        self.complete() && self.dropped_count == self.skipped_count
    }

    /// The counts as `tic-reshard --json` prints them: `meta.json`'s count fields under the
    /// same names (`processed_count`, `output_count`, `output_shard_count`, `dropped_count`,
    /// `skipped_count`, `error_count`, `not_found_count`, `complete`, `damaged_inputs`), plus
    /// `input_bytes`, `already_complete`, `redone_shards` and `succeeded` (exit status 0).
    pub fn to_json(&self) -> Value {
        json!({
            "processed_count": self.processed_count,
            "output_count": self.output_count,
            "output_shard_count": self.output_shard_count,
            "dropped_count": self.dropped_count,
            "skipped_count": self.skipped_count,
            "error_count": self.error_count,
            "not_found_count": self.not_found_count,
            "complete": self.complete(),
            "damaged_inputs": self.damaged_inputs,
            "input_bytes": self.input_bytes,
            "already_complete": self.already_complete,
            "redone_shards": self.redone_shards,
            "succeeded": self.succeeded(),
        })
    }
}

/// A run's settings and inputs, resolved (and checked) before anything is written.
struct Job<'a> {
    args: &'a ReshardArgs,
    out_fmt: ShardFormat,
    out_stats_fmt: ShardFormat,
    input: Location,
    output: Location,
    workers: usize,
    pool: rayon::ThreadPool,
    subset: Subset,
    /// Where the subset came from (`None`: standard input).
    subset_loc: Option<Location>,
    classes: Option<HashMap<Uid, i64>>,
    cls_sha: Option<String>,
    /// Input shards, `(index, name)` in index order.
    names: Vec<(u64, String)>,
    /// The input size table, if any: shard name -> sample count.
    table: Option<HashMap<String, u64>>,
}

impl<'a> Job<'a> {
    /// Parses the formats and locations and reads the subset, the class map and the input
    /// listing: everything that can fail on bad input fails here, before anything is written.
    fn open(args: &'a ReshardArgs) -> Result<Self> {
        if args.shard_size == 0 {
            bail!("--shard-size must be at least 1");
        }
        let in_fmt = ShardFormat::parse(&args.shard_format)?;
        let out_fmt = ShardFormat::parse(&args.output_shard_format)?;
        let out_stats_fmt = ShardFormat::parse(&args.output_shard_stats_format)?;
        let input = Location::parse(&args.input_dir)?;
        let output = Location::parse(&args.output_dir)?;
        let workers = args
            .num_workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .build()?;
        if args.subset_file == STDIO && args.cls_file.as_deref() == Some(STDIO) {
            bail!("-s - and -c - both read standard input; give one of them as a file");
        }
        let (subset, subset_loc) = read_subset(&args.subset_file)?;
        info!("subset {} has {} rows", subset.name, subset.view().len());
        let (classes, cls_sha) = match &args.cls_file {
            None => (None, None),
            Some(c) => {
                let (map, sha) = read_classes(c)?;
                (Some(map), Some(sha))
            }
        };
        let names = list_input_shards(&input, args, &in_fmt)?;
        let table = load_shard_table(&input, &args.shard_table)?;
        Ok(Self {
            args,
            out_fmt,
            out_stats_fmt,
            input,
            output,
            workers,
            pool,
            subset,
            subset_loc,
            classes,
            cls_sha,
            names,
            table,
        })
    }

    /// Takes the output folder's lock (held to the end of the run; object stores: see
    /// docs/formats.md) and refuses a folder holding neither our plan nor our `meta.json`
    /// unless `--overwrite`. A dry run does neither.
    fn lock_output(&self) -> Result<Option<DirLock>> {
        let (args, output) = (self.args, &self.output);
        let lock = match output.as_local() {
            Some(dir) if !args.dry_run => Some(DirLock::acquire(dir, "tic-reshard")?),
            _ => None,
        };
        if !args.dry_run {
            if let OutputState::Foreign(n) = resume::output_state(output, "")? {
                // A folder holding neither our plan nor our meta.json is never reused silently.
                let ours = output.join(PLAN_FILE).exists()? || output.join(META_FILE).exists()?;
                if !ours && !args.overwrite {
                    bail!(
                        "output folder {output} is not empty ({n} entries); pass --overwrite to replace its contents"
                    );
                }
            }
        }
        Ok(lock)
    }
}

/// Runs the resharder. Returns the summary; the caller exits non-zero unless
/// [`ReshardSummary::succeeded`].
pub fn run(args: &ReshardArgs) -> Result<ReshardSummary> {
    let started = Instant::now();
    let job = Job::open(args)?;
    // One writer per folder, held to the end of the run.
    let _lock = job.lock_output()?;
    let shards = job.scan_inputs();
    let (mut summary, errors) = job.summarize(&shards);
    let fp = meta::fingerprint(args, &shards, &job.subset, &job.cls_sha);
    if args.dry_run {
        info!(
            "dry run: {} samples processed, {} would be written to {} shards",
            summary.processed_count, summary.output_count, summary.output_shard_count
        );
        return Ok(summary);
    }
    let plan_bytes = crate::pyjson::to_string(
        &json!({(meta::PLAN_FINGERPRINT): fp, "output_count": summary.output_count}),
    );
    let Some(kept) = job.prepare_output(&mut summary, &fp, &plan_bytes)? else {
        return Ok(summary);
    };
    job.start_output(&plan_bytes)?;
    let records = job.write_outputs(&shards, &mut summary, kept)?;
    job.finish(&summary, &fp, &errors, &records)?;
    report(&summary, started);
    Ok(summary)
}

/// The run's one-line report on stderr.
fn report(summary: &ReshardSummary, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "tic-reshard: {} input samples -> {} output samples in {} shards ({} dropped of which {} skipped as resharder.py does, {} errors, {} subset uids not found) in {:.2}s ({:.0} samples/s, {:.1} MB/s)",
        summary.processed_count,
        summary.output_count,
        summary.output_shard_count,
        summary.dropped_count,
        summary.skipped_count,
        summary.error_count,
        summary.not_found_count,
        secs,
        (summary.processed_count + summary.dropped_count) as f64 / secs,
        summary.input_bytes as f64 / 1e6 / secs
    );
}
