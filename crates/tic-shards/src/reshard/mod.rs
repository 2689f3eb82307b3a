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

use crate::lock::{DirLock, LOCK_FILE};
use crate::npy::UidView;
use crate::shardfmt::ShardFormat;
use crate::storage::{read_stdin, LocalCopy, Location, STDIO};
use crate::uid::Uid;
use crate::wds::{member_bytes, scan_shard, SampleRef, Scan, ShardError, TarSampleWriter};
use crate::{atomic, cli, pickle, pyjson};
use anyhow::{bail, Context, Result};
use clap::Parser;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;
use tracing::{error, info, warn};

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
    #[arg(long, default_value = "{:08d}.tar")]
    pub shard_format: String,
    /// Output shard names, in Python str.format syntax.
    #[arg(long, default_value = "{:08d}.tar")]
    pub output_shard_format: String,
    /// Input shard stats files, in Python str.format syntax.
    #[arg(long, default_value = "{:08d}_stats.json")]
    pub shard_stats_format: String,
    /// Output shard stats files, in Python str.format syntax.
    #[arg(long, default_value = "{:08d}_stats.json")]
    pub output_shard_stats_format: String,
    /// JSON table of input shard sizes, relative to the input folder.
    #[arg(long, default_value = "sizes.json")]
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

/// One finished output shard as recorded in `meta.json` (`shards`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct ShardRecord {
    /// File name of the tar.
    pub name: String,
    /// Samples in it.
    pub samples: u64,
    /// Size of the tar in bytes.
    pub bytes: u64,
    /// CRC-32 (IEEE, as zlib's `crc32`) of the tar, 8 lowercase hex digits.
    pub crc32: String,
}

/// Formats a CRC-32 as `meta.json` records it.
fn crc_hex(crc: u32) -> String {
    format!("{crc:08x}")
}

/// A writer that counts bytes and computes their CRC-32 on the way through.
struct CrcWriter<W: Write> {
    inner: W,
    crc: crc32fast::Hasher,
    len: u64,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// One subset match in an input shard.
#[derive(Debug, Clone, Copy)]
struct Match {
    /// Index of the sample in the shard's scan.
    sample: u32,
    /// Copies to write (multiplicity in the subset).
    k: u32,
    /// First `j` of its keys (copies of the same uid in earlier input samples).
    base: u32,
    /// Position of the uid's first row in the subset.
    first: u64,
}

/// Pass-1 result for one input shard.
#[derive(Debug, Default)]
struct InputShard {
    name: String,
    matches: Vec<Match>,
    processed: u64,
    dropped: u64,
    skipped: u64,
    /// The shard could not be read to its end.
    damaged: bool,
    errors: Vec<String>,
    bytes: u64,
    outputs: u64,
}

/// Raw bytes of a file: memory-mapped when possible.
enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// A local copy of a file with its bytes mapped.
struct Mapped {
    _copy: LocalCopy,
    bytes: Bytes,
}

fn map_location(loc: &Location) -> Result<Mapped> {
    let copy = loc.fetch()?;
    let file = std::fs::File::open(copy.path()).with_context(|| format!("opening {loc}"))?;
    let len = file.metadata()?.len();
    let bytes = if len == 0 {
        Bytes::Owned(Vec::new())
    } else {
        // SAFETY: input files are not modified while tic-reshard runs (documented).
        Bytes::Mapped(
            unsafe { memmap2::Mmap::map(&file) }.with_context(|| format!("mapping {loc}"))?,
        )
    };
    Ok(Mapped { _copy: copy, bytes })
}

/// The subset: sorted uids, memory-mapped (or sorted in memory when the file was unsorted, or
/// read from standard input).
struct Subset {
    bytes: Bytes,
    _mapped: Option<Mapped>,
    name: String,
    sha256: String,
    /// The bytes as given, when they came from standard input (`-s -`).
    stdin: Option<Vec<u8>>,
}

impl Subset {
    /// Reads the subset from standard input: an `.npy` when it starts with the numpy magic,
    /// otherwise raw 16-byte records (the name rule of [`UidView::new`] cannot apply).
    fn from_stdin() -> Result<Self> {
        let raw = read_stdin("-s -")?;
        let name = "standard input (-s -)".to_string();
        let sha256 = hex::encode(Sha256::digest(&raw));
        let view = UidView::new(&raw, &name)?;
        let bytes = match view.first_unsorted() {
            Some(i) => {
                warn!(
                    "{name}: subset is not sorted (row {i} < row {}); sorting {} rows in memory",
                    i - 1,
                    view.len()
                );
                let mut v = view.to_vec();
                v.sort_unstable();
                crate::npy::write_uids(&v)
            }
            None => raw.clone(),
        };
        Ok(Subset {
            bytes: Bytes::Owned(bytes),
            _mapped: None,
            name,
            sha256,
            stdin: Some(raw),
        })
    }

    fn load(loc: &Location) -> Result<Self> {
        let name = loc.to_string();
        let mapped = map_location(loc)?;
        let sha256 = hex::encode(Sha256::digest(&*mapped.bytes));
        let view = UidView::new(&mapped.bytes, &name)?;
        if let Some(i) = view.first_unsorted() {
            warn!(
                "{name}: subset is not sorted (row {i} < row {}); sorting {} rows in memory \
                 (resharder.py would silently miss matches)",
                i - 1,
                view.len()
            );
            let mut v = view.to_vec();
            v.sort_unstable();
            return Ok(Subset {
                bytes: Bytes::Owned(crate::npy::write_uids(&v)),
                _mapped: None,
                name,
                sha256,
                stdin: None,
            });
        }
        Ok(Subset {
            bytes: Bytes::Owned(Vec::new()),
            _mapped: Some(mapped),
            name,
            sha256,
            stdin: None,
        })
    }

    fn view(&self) -> UidView<'_> {
        let bytes: &[u8] = match &self._mapped {
            Some(m) => &m.bytes,
            None => &self.bytes,
        };
        UidView::new(bytes, &self.name).expect("validated at load")
    }
}

#[derive(Deserialize)]
struct UidField {
    uid: Option<Value>,
}

/// Reads the `uid` of a sample's json member; errors name the shard, member and offset.
fn sample_uid(data: &[u8], shard: &str, s: &SampleRef) -> Result<(Uid, String), String> {
    let Some(j) = s.member("json") else {
        return Err(format!(
            "{shard}: sample {:?} at byte {}: no json member, skipping",
            s.key,
            s.offset()
        ));
    };
    let at = || format!("{shard}: member {}.json at byte {}", s.key, j.header_offset);
    let parsed: UidField = serde_json::from_slice(member_bytes(data, j))
        .map_err(|e| format!("{}: unreadable json: {e}", at()))?;
    let uid_str = match parsed.uid {
        Some(Value::String(s)) => s,
        Some(other) => return Err(format!("{}: uid is not a string: {other}", at())),
        None => return Err(format!("{}: json has no uid", at())),
    };
    let uid = Uid::parse(&uid_str).map_err(|e| format!("{}: {e}", at()))?;
    Ok((uid, uid_str))
}

/// Lists the input shards: `(index, name)` in index order.
fn list_input_shards(
    input: &Location,
    args: &ReshardArgs,
    fmt: &ShardFormat,
) -> Result<Vec<(u64, String)>> {
    if let Some(n) = args.num_shards {
        return Ok((args.first_shard..args.first_shard + n)
            .map(|i| (i, fmt.format(i)))
            .collect());
    }
    let mut found: Vec<(u64, String)> = input
        .list()
        .with_context(|| format!("listing input folder {input}"))?
        .into_iter()
        .filter(|e| !e.is_dir)
        .filter_map(|e| fmt.index_of(&e.name).map(|i| (i, e.name)))
        .filter(|(i, _)| *i >= args.first_shard)
        .collect();
    found.sort();
    if found.is_empty() {
        bail!(
            "no input shards named like {:?} (from index {}) in {input}",
            fmt.as_str(),
            args.first_shard
        );
    }
    Ok(found)
}

/// Reads the input size table, if present: shard name -> sample count.
fn load_shard_table(input: &Location, table: &str) -> Result<Option<HashMap<String, u64>>> {
    let loc = input.join(table);
    if !loc.exists()? {
        return Ok(None);
    }
    let text = loc.read()?;
    let map: HashMap<String, u64> = serde_json::from_slice(&text)
        .with_context(|| format!("{loc}: expected a JSON object of shard name -> sample count"))?;
    info!("loaded shard table {loc} with {} shards", map.len());
    Ok(Some(map))
}

fn scan_input(
    input: &Location,
    name: &str,
    subset: &UidView,
    cls_ok: &dyn Fn(Uid) -> bool,
) -> InputShard {
    let mut out = InputShard {
        name: name.to_string(),
        ..Default::default()
    };
    let loc = input.join(name);
    let mapped = match map_location(&loc) {
        Ok(m) => m,
        Err(e) => {
            out.errors.push(format!("{loc}: cannot read shard: {e:#}"));
            out.damaged = true;
            return out;
        }
    };
    let data = &mapped.bytes[..];
    out.bytes = data.len() as u64;
    let scan = scan_shard(data, &loc.to_string());
    let mut dup_keys = std::collections::HashSet::new();
    for e in &scan.errors {
        match e {
            ShardError::Corrupt { .. } => out.damaged = true,
            // The sample is dropped (webdataset would refuse the whole shard).
            ShardError::DuplicateMember { key, .. } => {
                if dup_keys.insert(key.clone()) {
                    out.dropped += 1;
                }
            }
        }
        out.errors.push(e.to_string());
    }
    for (idx, s) in scan.samples.iter().enumerate() {
        match sample_uid(data, &loc.to_string(), s) {
            Err(msg) => {
                // resharder.py skips such samples too.
                out.errors.push(msg);
                out.dropped += 1;
                out.skipped += 1;
            }
            Ok((uid, _)) => {
                out.processed += 1;
                let r = subset.equal_range(uid);
                if !r.is_empty() {
                    if !cls_ok(uid) {
                        out.errors.push(format!(
                            "{loc}: sample {:?} at byte {}: uid {uid} has no class in the -c file",
                            s.key,
                            s.offset()
                        ));
                        out.dropped += 1;
                        continue;
                    }
                    out.matches.push(Match {
                        sample: idx as u32,
                        k: r.len() as u32,
                        base: 0,
                        first: r.start as u64,
                    });
                }
            }
        }
    }
    out
}

/// Gives each repeated input uid its first key number (`base`) in input order.
fn number_duplicates(shards: &mut [InputShard], subset_len: usize) {
    let mut seen = vec![0u64; subset_len.div_ceil(64)];
    let mut copies: HashMap<u64, u32> = HashMap::new();
    for shard in shards.iter_mut() {
        for m in shard.matches.iter_mut() {
            let (w, b) = ((m.first / 64) as usize, m.first % 64);
            if seen[w] & (1 << b) != 0 {
                let c = copies.entry(m.first).or_insert(1);
                m.base = *c * m.k;
                *c += 1;
            } else {
                seen[w] |= 1 << b;
            }
        }
        shard.outputs = shard.matches.iter().map(|m| m.k as u64).sum();
    }
}

/// Distinct subset uids that matched nothing.
fn count_not_found(shards: &[InputShard], subset: &UidView) -> u64 {
    let mut hit = vec![false; subset.len()];
    for s in shards {
        for m in &s.matches {
            hit[m.first as usize] = true;
        }
    }
    let mut missing = 0u64;
    let mut i = 0;
    while i < subset.len() {
        let r = subset.equal_range(subset.get(i));
        if !hit[r.start] {
            missing += 1;
        }
        i = r.end.max(i + 1);
    }
    missing
}

fn fingerprint(
    args: &ReshardArgs,
    shards: &[InputShard],
    subset: &Subset,
    cls_sha: &Option<String>,
) -> String {
    let v = json!({
        "version": 1,
        "input_dir": args.input_dir,
        "shards": shards.iter().map(|s| json!([s.name, s.bytes, s.processed, s.outputs])).collect::<Vec<_>>(),
        "subset_sha256": subset.sha256,
        "cls_sha256": cls_sha,
        "shard_size": args.shard_size,
        "output_shard_format": args.output_shard_format,
        "output_shard_stats_format": args.output_shard_stats_format,
        "shuffle_bufsize": args.shuffle_bufsize,
        "shuffle_seed": args.shuffle_seed,
    });
    hex::encode(Sha256::digest(v.to_string().as_bytes()))
}

/// What the output folder holds before writing.
enum OutputState {
    Empty,
    Resumable,
    Complete(Value),
    Foreign(usize),
}

fn output_state(out: &Location, fp: &str) -> Result<OutputState> {
    let entries = match out.list() {
        Ok(e) => e,
        Err(_) if !out.is_remote() && !out.as_local().unwrap().exists() => {
            return Ok(OutputState::Empty)
        }
        Err(e) => return Err(e),
    };
    let entries: Vec<_> = entries
        .into_iter()
        .filter(|e| !e.name.starts_with(atomic::TEMP_PREFIX) && e.name != LOCK_FILE)
        .collect();
    if entries.is_empty() {
        return Ok(OutputState::Empty);
    }
    let meta = out.join("meta.json");
    if meta.exists()? {
        let v: Value = serde_json::from_slice(&meta.read()?).unwrap_or(Value::Null);
        if v.get("plan_fingerprint").and_then(Value::as_str) == Some(fp) {
            return Ok(OutputState::Complete(v));
        }
    }
    let plan = out.join(PLAN_FILE);
    if plan.exists()? {
        let v: Value = serde_json::from_slice(&plan.read()?).unwrap_or(Value::Null);
        if v.get("plan_fingerprint").and_then(Value::as_str) == Some(fp) {
            return Ok(OutputState::Resumable);
        }
    }
    Ok(OutputState::Foreign(entries.len()))
}

fn clear_output(out: &Location) -> Result<()> {
    match out.as_local() {
        Some(p) => {
            if p.exists() {
                for e in std::fs::read_dir(p)? {
                    let e = e?;
                    if e.file_name() == LOCK_FILE {
                        continue; // ours, held for this run
                    }
                    if e.file_type()?.is_dir() {
                        std::fs::remove_dir_all(e.path())?;
                    } else {
                        std::fs::remove_file(e.path())?;
                    }
                }
            }
        }
        None => {
            for e in out.list()? {
                if !e.is_dir {
                    out.join(&e.name).remove()?;
                }
            }
        }
    }
    Ok(())
}

/// A reference to one output sample: (input shard, match, copy).
#[derive(Clone, Copy)]
struct Item {
    shard: usize,
    m: usize,
    copy: u32,
}

/// Items of output shard `o`, in input order.
fn items_for(shards: &[InputShard], starts: &[u64], o: u64, size: u64) -> Vec<Item> {
    let (lo, hi) = (o * size, (o + 1) * size);
    let mut items = Vec::with_capacity(size as usize);
    let first = starts.partition_point(|&s| s <= lo).saturating_sub(1);
    for (si, shard) in shards.iter().enumerate().skip(first) {
        let mut pos = starts[si];
        if pos >= hi {
            break;
        }
        if pos + shard.outputs <= lo {
            continue;
        }
        for (mi, m) in shard.matches.iter().enumerate() {
            for c in 0..m.k {
                if pos >= lo && pos < hi {
                    items.push(Item {
                        shard: si,
                        m: mi,
                        copy: c,
                    });
                }
                pos += 1;
            }
        }
    }
    items
}

/// webdataset-style buffered shuffle of `items`, seeded.
fn buffered_shuffle(items: Vec<Item>, bufsize: usize, seed: u64) -> Vec<Item> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut buf: Vec<Item> = Vec::with_capacity(bufsize);
    let mut out = Vec::with_capacity(items.len());
    for it in items {
        if buf.len() < bufsize {
            buf.push(it);
            continue;
        }
        let k = rng.random_range(0..buf.len());
        out.push(std::mem::replace(&mut buf[k], it));
    }
    buf.shuffle(&mut rng);
    out.extend(buf);
    out
}

/// Writes output shard `o`; returns its record (samples, bytes, CRC-32).
fn write_output_shard(
    input: &Location,
    out: &Location,
    shards: &[InputShard],
    items: &[Item],
    classes: Option<&HashMap<Uid, i64>>,
    tar_name: &str,
) -> Result<ShardRecord> {
    let mut opened: HashMap<usize, (Mapped, Scan)> = HashMap::new();
    let target = out.join(tar_name);
    let (mut tmp_remote, mut file) = (None, None);
    let writer: Box<dyn Write> = match target.as_local() {
        Some(p) => {
            file = Some(atomic::AtomicFile::create(p)?);
            Box::new(file.as_mut().unwrap())
        }
        None => {
            tmp_remote = Some(tempfile::NamedTempFile::new()?);
            Box::new(std::io::BufWriter::with_capacity(
                1 << 20,
                tmp_remote.as_ref().unwrap().reopen()?,
            ))
        }
    };
    let mut tw = TarSampleWriter::new(CrcWriter {
        inner: writer,
        crc: crc32fast::Hasher::new(),
        len: 0,
    });
    for it in items {
        let (mapped, scan) = match opened.entry(it.shard) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(v) => {
                let loc = input.join(&shards[it.shard].name);
                let mapped = map_location(&loc)?;
                let scan = scan_shard(&mapped.bytes, &loc.to_string());
                v.insert((mapped, scan))
            }
        };
        let data = &mapped.bytes[..];
        let m = shards[it.shard].matches[it.m];
        let sample = scan.samples.get(m.sample as usize).with_context(|| {
            format!(
                "input shard {} changed since it was scanned",
                shards[it.shard].name
            )
        })?;
        let (uid, uid_str) = sample_uid(data, &shards[it.shard].name, sample)
            .map_err(|e| anyhow::anyhow!("input shard changed since it was scanned: {e}"))?;
        let key = format!("{uid_str}-{}", m.base + it.copy);
        let cls_text;
        let json_mtime = sample.member("json").map_or(0, |j| j.mtime);
        let mut members: Vec<(&str, &[u8], u64)> = sample
            .members
            .iter()
            .filter(|mm| !(classes.is_some() && mm.ext == "cls"))
            .map(|mm| (mm.ext.as_str(), member_bytes(data, mm), mm.mtime))
            .collect();
        if let Some(c) = classes {
            cls_text = c[&uid].to_string();
            members.push(("cls", cls_text.as_bytes(), json_mtime));
        }
        tw.append_sample(&key, &mut members)
            .with_context(|| format!("writing {target}"))?;
    }
    let mut w = tw.finish().with_context(|| format!("writing {target}"))?;
    w.flush()?;
    let record = ShardRecord {
        name: tar_name.to_string(),
        samples: items.len() as u64,
        bytes: w.len,
        crc32: crc_hex(w.crc.clone().finalize()),
    };
    drop(w);
    if let Some(f) = file {
        f.commit().with_context(|| format!("writing {target}"))?;
    }
    if let Some(t) = tmp_remote {
        target.put_file(t.path())?;
    }
    Ok(record)
}

/// The bytes of a shard's stats file (`{"successes": n}`).
fn stats_bytes(n: u64) -> Vec<u8> {
    pyjson::to_string(&json!({ "successes": n })).into_bytes()
}

/// Checks an output shard left by an interrupted run before keeping it: its stats file says
/// `n` samples, its tar reads back with exactly `n` samples and ends with the end-of-archive
/// blocks. Returns its record, or why it cannot be kept.
fn check_kept_shard(
    out: &Location,
    tar_name: &str,
    stats: &Location,
    n: u64,
) -> Result<ShardRecord, String> {
    let st = stats.read().map_err(|e| format!("{e:#}"))?;
    if st != stats_bytes(n) {
        return Err(format!(
            "{stats} says {:?}, expected {{\"successes\": {n}}}",
            String::from_utf8_lossy(&st)
        ));
    }
    let loc = out.join(tar_name);
    let mapped = map_location(&loc).map_err(|e| format!("{e:#}"))?;
    let data = &mapped.bytes[..];
    let scan = scan_shard(data, &loc.to_string());
    if let Some(e) = scan.errors.first() {
        return Err(e.to_string());
    }
    if scan.samples.len() as u64 != n {
        return Err(format!(
            "{loc} holds {} samples, expected {n}",
            scan.samples.len()
        ));
    }
    if data.len() < 1024 || data[data.len() - 1024..].iter().any(|&b| b != 0) {
        return Err(format!(
            "{loc} does not end with the tar end-of-archive blocks (truncated)"
        ));
    }
    Ok(ShardRecord {
        name: tar_name.to_string(),
        samples: n,
        bytes: data.len() as u64,
        crc32: crc_hex(crc32fast::hash(data)),
    })
}

/// Checks the shards of a finished output against `meta.json`'s `shards` records: the stats
/// file exists, the tar has the recorded size and (with `verify`) CRC-32. Returns the records
/// of the intact shards (by index) and the damaged shards with the reason.
#[allow(clippy::type_complexity)]
fn check_finished(
    out: &Location,
    meta: &Value,
    count: u64,
    out_fmt: &ShardFormat,
    out_stats_fmt: &ShardFormat,
    verify: bool,
    pool: &rayon::ThreadPool,
) -> Result<(Vec<Option<ShardRecord>>, Vec<(u64, String)>)> {
    let records: Option<Vec<ShardRecord>> = meta
        .get("shards")
        .and_then(|v| serde_json::from_value(v.clone()).ok());
    let records = match records {
        Some(r) if r.len() as u64 == count => Some(r),
        _ => {
            warn!(
                "{}: no shard records (written by an older tic-reshard?): checking only that the shards exist",
                out.join("meta.json")
            );
            None
        }
    };
    let results: Vec<Result<Option<ShardRecord>, String>> = pool.install(|| {
        (0..count)
            .into_par_iter()
            .map(|o| -> Result<Option<ShardRecord>, String> {
                let name = out_fmt.format(o);
                let stats = out.join(&out_stats_fmt.format(o));
                let tar = out.join(&name);
                let e = |e: anyhow::Error| format!("{e:#}");
                if !stats.exists().map_err(e)? {
                    return Err(format!("{stats} is missing"));
                }
                let size = tar
                    .size()
                    .map_err(e)?
                    .ok_or_else(|| format!("{tar} is missing"))?;
                let Some(rec) = records.as_ref().map(|r| &r[o as usize]) else {
                    return Ok(None);
                };
                if rec.name != name {
                    return Err(format!("meta.json records shard {o} as {:?}", rec.name));
                }
                if size != rec.bytes {
                    return Err(format!(
                        "{tar} is {size} bytes, meta.json records {} (truncated or replaced)",
                        rec.bytes
                    ));
                }
                if verify {
                    let mapped = map_location(&tar).map_err(e)?;
                    let crc = crc_hex(crc32fast::hash(&mapped.bytes));
                    if crc != rec.crc32 {
                        return Err(format!(
                            "{tar} has CRC-32 {crc}, meta.json records {} (corrupted)",
                            rec.crc32
                        ));
                    }
                }
                Ok(Some(rec.clone()))
            })
            .collect()
    });
    let mut kept = Vec::with_capacity(count as usize);
    let mut damaged = Vec::new();
    for (o, r) in results.into_iter().enumerate() {
        match r {
            Ok(rec) => kept.push(rec),
            Err(why) => {
                kept.push(None);
                damaged.push((o as u64, why));
            }
        }
    }
    Ok((kept, damaged))
}

fn py_str(v: &Option<impl ToString>) -> String {
    v.as_ref().map_or("None".to_string(), |x| x.to_string())
}

fn py_bool(b: bool) -> String {
    if b { "True" } else { "False" }.to_string()
}

/// `meta.json` content: every argument as a string (as resharder.py), then the counts.
fn meta_json(
    args: &ReshardArgs,
    s: &ReshardSummary,
    workers: usize,
    fp: &str,
    errors: &[String],
    records: &[ShardRecord],
) -> Value {
    let mut m = Map::new();
    let mut put = |k: &str, v: String| {
        m.insert(k.to_string(), Value::String(v));
    };
    put("input_dir", args.input_dir.clone());
    put("output_dir", args.output_dir.clone());
    put("subset_file", args.subset_file.clone());
    put("cls_file", py_str(&args.cls_file));
    put("num_shards", py_str(&args.num_shards));
    put("first_shard", args.first_shard.to_string());
    put("num_workers", workers.to_string());
    put("shard_size", args.shard_size.to_string());
    put("shard_format", args.shard_format.clone());
    put("output_shard_format", args.output_shard_format.clone());
    put("shard_stats_format", args.shard_stats_format.clone());
    put(
        "output_shard_stats_format",
        args.output_shard_stats_format.clone(),
    );
    put("shard_table", args.shard_table.clone());
    put("write_shard_table", py_bool(args.write_shard_table));
    put("shuffle_bufsize", args.shuffle_bufsize.to_string());
    put("shuffle_seed", args.shuffle_seed.to_string());
    put("dry_run", py_bool(args.dry_run));
    put("overwrite", py_bool(args.overwrite));
    put("verbose", args.verbose.to_string());
    put("quiet", args.quiet.to_string());
    let num = |v: u64| Value::from(v);
    m.insert("processed_count".into(), num(s.processed_count));
    m.insert("output_count".into(), num(s.output_count));
    m.insert("blur_count".into(), num(0));
    m.insert("blur_time".into(), Value::from(0.0));
    m.insert("output_shard_count".into(), num(s.output_shard_count));
    m.insert("worker_success".into(), num(workers as u64));
    m.insert("dropped_count".into(), num(s.dropped_count));
    m.insert("error_count".into(), num(s.error_count));
    m.insert("not_found_count".into(), num(s.not_found_count));
    m.insert("skipped_count".into(), num(s.skipped_count));
    m.insert("complete".into(), Value::Bool(s.complete()));
    m.insert("damaged_inputs".into(), json!(s.damaged_inputs));
    m.insert(
        "errors".into(),
        json!(errors.iter().take(1000).collect::<Vec<_>>()),
    );
    m.insert("plan_fingerprint".into(), Value::String(fp.to_string()));
    m.insert(
        "tool".into(),
        Value::String(format!("tic-reshard {}", env!("CARGO_PKG_VERSION"))),
    );
    m.insert(
        "cwd".into(),
        Value::String(
            std::env::current_dir()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        ),
    );
    m.insert("shards".into(), json!(records));
    Value::Object(m)
}

/// Refuses a folder whose `meta.json` (a `tic-reshard` output) says `"complete": false`, naming
/// the damaged inputs and `flag`, the option that accepts the loss; with `accept` it only warns.
/// Folders without `meta.json`, or whose `meta.json` predates the `complete` field, pass.
pub fn check_complete(dir: &Location, accept: bool, flag: &str) -> Result<()> {
    let meta = dir.join("meta.json");
    if !meta.exists()? {
        return Ok(());
    }
    let v: Value =
        serde_json::from_slice(&meta.read()?).with_context(|| format!("{meta}: not valid JSON"))?;
    if v.get("complete") != Some(&Value::Bool(false)) {
        return Ok(());
    }
    let damaged = v
        .get("damaged_inputs")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    if accept {
        warn!("{dir} is an incomplete reshard (input lost in {damaged}); using it anyway ({flag})");
        return Ok(());
    }
    bail!(
        "{dir} is an incomplete reshard: {meta} says \"complete\": false (input lost in {damaged}); \
         repair the input and rerun tic-reshard, or pass {flag} to use it anyway"
    )
}

/// Runs the resharder. Returns the summary; the caller exits non-zero unless
/// [`ReshardSummary::succeeded`].
pub fn run(args: &ReshardArgs) -> Result<ReshardSummary> {
    let started = Instant::now();
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
    let quiet = args.quiet > 0;

    // Everything that can fail on bad input fails here, before anything is written.
    if args.subset_file == STDIO && args.cls_file.as_deref() == Some(STDIO) {
        bail!("-s - and -c - both read standard input; give one of them as a file");
    }
    let (subset, subset_loc) = if args.subset_file == STDIO {
        (Subset::from_stdin()?, None)
    } else {
        let loc = Location::parse(&args.subset_file)?;
        let s = Subset::load(&loc).with_context(|| format!("loading subset file {loc}"))?;
        (s, Some(loc))
    };
    let view = subset.view();
    info!("subset {} has {} rows", subset.name, view.len());
    let (classes, cls_sha) = match &args.cls_file {
        None => (None, None),
        Some(c) => {
            let (bytes, name) = if c == STDIO {
                (read_stdin("-c -")?, "standard input (-c -)".to_string())
            } else {
                let loc = Location::parse(c)?;
                (loc.read()?, loc.to_string())
            };
            let map = pickle::read_uid_classes(&bytes, &name)?;
            info!("class file {name} maps {} uids", map.len());
            (Some(map), Some(hex::encode(Sha256::digest(&bytes))))
        }
    };
    let names = list_input_shards(&input, args, &in_fmt)?;
    let table = load_shard_table(&input, &args.shard_table)?;
    // One writer per folder, held to the end of the run (object stores: see docs/formats.md).
    let _lock = match output.as_local() {
        Some(dir) if !args.dry_run => Some(DirLock::acquire(dir, "tic-reshard")?),
        _ => None,
    };
    if !args.dry_run {
        if let OutputState::Foreign(n) = output_state(&output, "")? {
            // A folder holding neither our plan nor our meta.json is never reused silently.
            let ours = output.join(PLAN_FILE).exists()? || output.join("meta.json").exists()?;
            if !ours && !args.overwrite {
                bail!(
                    "output folder {output} is not empty ({n} entries); pass --overwrite to replace its contents"
                );
            }
        }
    }

    // Pass 1: scan headers and json members of every input shard.
    info!(
        "scanning {} input shards with {workers} workers",
        names.len()
    );
    let pb = cli::progress(names.len() as u64, "shards", quiet);
    pb.set_message("scan");
    let cls_ok = |u: Uid| classes.as_ref().is_none_or(|c| c.contains_key(&u));
    let mut shards: Vec<InputShard> = pool.install(|| {
        names
            .par_iter()
            .map(|(_, name)| {
                let r = scan_input(&input, name, &view, &cls_ok);
                pb.inc(1);
                r
            })
            .collect()
    });
    pb.finish_and_clear();
    number_duplicates(&mut shards, view.len());

    let mut errors: Vec<String> = Vec::new();
    let mut summary = ReshardSummary::default();
    for s in &shards {
        summary.processed_count += s.processed;
        summary.dropped_count += s.dropped;
        summary.skipped_count += s.skipped;
        if s.damaged {
            summary.damaged_inputs.push(s.name.clone());
        }
        summary.output_count += s.outputs;
        summary.input_bytes += s.bytes;
        errors.extend(s.errors.iter().cloned());
        if let Some(t) = &table {
            match t.get(&s.name) {
                Some(&n) if n != s.processed + s.dropped && s.errors.is_empty() => warn!(
                    "{}: shard table says {n} samples, found {}",
                    s.name,
                    s.processed + s.dropped
                ),
                _ => {}
            }
        }
    }
    summary.not_found_count = count_not_found(&shards, &view);
    let size = args.shard_size as u64;
    summary.output_shard_count = summary.output_count.div_ceil(size);
    if summary.not_found_count > 0 {
        warn!(
            "{} uids of the subset were not found in the input",
            summary.not_found_count
        );
    }
    for e in errors.iter().take(50) {
        error!("{e}");
    }
    if errors.len() > 50 {
        error!(
            "… and {} more errors (all listed in meta.json)",
            errors.len() - 50
        );
    }
    summary.error_count = errors.len() as u64;
    let fp = fingerprint(args, &shards, &subset, &cls_sha);

    if args.dry_run {
        info!(
            "dry run: {} samples processed, {} would be written to {} shards",
            summary.processed_count, summary.output_count, summary.output_shard_count
        );
        return Ok(summary);
    }

    let meta_loc = output.join("meta.json");
    let plan_bytes =
        pyjson::to_string(&json!({"plan_fingerprint": fp, "output_count": summary.output_count}));
    // Records of finished shards already checked against meta.json (a damaged finished output).
    let mut kept: Vec<Option<ShardRecord>> = vec![None; summary.output_shard_count as usize];
    match output_state(&output, &fp)? {
        OutputState::Complete(meta) => {
            let (intact, damaged) = check_finished(
                &output,
                &meta,
                summary.output_shard_count,
                &out_fmt,
                &out_stats_fmt,
                args.verify,
                &pool,
            )?;
            if damaged.is_empty() {
                info!(
                    "{output} already holds this reshard (meta.json matches, {} shards {}); nothing to do",
                    summary.output_shard_count,
                    if args.verify { "verified" } else { "of the recorded sizes" }
                );
                if !summary.complete() {
                    warn!(
                        "{output} is incomplete: input lost in {}",
                        summary.damaged_inputs.join(", ")
                    );
                }
                summary.already_complete = true;
                return Ok(summary);
            }
            for (o, why) in &damaged {
                warn!(
                    "finished output shard {} is damaged: {why}; writing it again",
                    out_fmt.format(*o)
                );
            }
            // The plan first (a kill from here on resumes), then the completion marker goes,
            // before any shard is touched; a damaged shard's stats file goes before its tar.
            output.join(PLAN_FILE).write(plan_bytes.as_bytes())?;
            meta_loc.remove()?;
            for (o, _) in &damaged {
                output.join(&out_stats_fmt.format(*o)).remove()?;
                output.join(&out_fmt.format(*o)).remove()?;
                summary.redone_shards.push(out_fmt.format(*o));
            }
            kept = intact;
        }
        OutputState::Resumable => {
            meta_loc.remove()?;
            let n = output
                .as_local()
                .map_or(Ok(0), atomic::remove_stale_temps)?;
            info!("resuming the interrupted reshard in {output} (removed {n} temporary files)");
        }
        OutputState::Foreign(n) => {
            if !args.overwrite {
                bail!(
                    "output folder {output} holds a different reshard ({n} entries); pass --overwrite to replace it"
                );
            }
            info!("--overwrite: clearing {output}");
            // The old completion marker goes first: a kill while clearing never leaves a folder
            // that a rerun of the old command takes for finished.
            meta_loc.remove()?;
            clear_output(&output)?;
        }
        OutputState::Empty => {}
    }
    // Temporary files of a run killed before it wrote anything else (e.g. mid plan file).
    if let Some(dir) = output.as_local() {
        atomic::remove_stale_temps(dir)?;
    }
    output.create_dir_all()?;
    output.join(PLAN_FILE).write(plan_bytes.as_bytes())?;
    let ids = match (&subset_loc, &subset.stdin) {
        (Some(loc), _) => loc.read()?,
        (None, Some(raw)) => raw.clone(),
        (None, None) => unreachable!("a subset comes from a file or from standard input"),
    };
    output.join("sample_ids.npy").write(&ids)?;

    // Pass 2: write output shards in parallel.
    let mut starts = Vec::with_capacity(shards.len());
    let mut acc = 0u64;
    for s in &shards {
        starts.push(acc);
        acc += s.outputs;
    }
    let pb = cli::progress(summary.output_count, "samples", quiet);
    pb.set_message("write");
    let records = Mutex::new(kept);
    let skipped = std::sync::atomic::AtomicU64::new(0);
    let rechecked = Mutex::new(Vec::<String>::new());
    pool.install(|| {
        (0..summary.output_shard_count)
            .into_par_iter()
            .try_for_each(|o| -> Result<()> {
                let shard_index = o;
                let tar_name = out_fmt.format(shard_index);
                let stats = output.join(&out_stats_fmt.format(shard_index));
                let items = items_for(&shards, &starts, o, size);
                let n = items.len() as u64;
                let known = records.lock().unwrap()[o as usize].is_some();
                let mut record = None;
                if known {
                    // Checked against meta.json above.
                    skipped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                } else if stats.exists()? && output.join(&tar_name).exists()? {
                    // Left by an interrupted run: kept only if it reads back whole.
                    match check_kept_shard(&output, &tar_name, &stats, n) {
                        Ok(r) => {
                            skipped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            record = Some(r);
                        }
                        Err(why) => {
                            warn!(
                                "output shard {tar_name} cannot be kept: {why}; writing it again"
                            );
                            rechecked.lock().unwrap().push(tar_name.clone());
                            stats.remove()?;
                        }
                    }
                }
                if !known && record.is_none() {
                    let items = if args.shuffle_bufsize > 0 {
                        buffered_shuffle(
                            items,
                            args.shuffle_bufsize,
                            args.shuffle_seed ^ o.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                        )
                    } else {
                        items
                    };
                    let r = write_output_shard(
                        &input,
                        &output,
                        &shards,
                        &items,
                        classes.as_ref(),
                        &tar_name,
                    )?;
                    stats.write(&stats_bytes(n))?;
                    record = Some(r);
                }
                if let Some(r) = record {
                    records.lock().unwrap()[o as usize] = Some(r);
                }
                pb.inc(n);
                Ok(())
            })
    })?;
    pb.finish_and_clear();
    let skipped = skipped.into_inner();
    if skipped > 0 {
        info!("{skipped} output shards were already finished and were kept");
    }
    summary
        .redone_shards
        .extend(rechecked.into_inner().unwrap());
    summary.redone_shards.sort();
    let records: Vec<ShardRecord> = records
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|r| r.expect("every output shard is written or kept"))
        .collect();
    if args.write_shard_table {
        let mut w: Vec<(&str, u64)> = records
            .iter()
            .map(|r| (r.name.as_str(), r.samples))
            .collect();
        w.sort();
        let table: Map<String, Value> = w
            .into_iter()
            .map(|(k, v)| (k.to_string(), Value::from(v)))
            .collect();
        output
            .join(&args.shard_table)
            .write(pyjson::to_string(&table).as_bytes())?;
    }
    // The completion marker, last; then the plan goes (and the lock, when `_lock` drops).
    let meta = meta_json(args, &summary, workers, &fp, &errors, &records);
    meta_loc.write(pyjson::to_string(&meta).as_bytes())?;
    output.join(PLAN_FILE).remove()?;
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
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_is_a_permutation() {
        let items: Vec<Item> = (0..100)
            .map(|i| Item {
                shard: 0,
                m: i,
                copy: 0,
            })
            .collect();
        let out = buffered_shuffle(items, 10, 3);
        let mut ms: Vec<usize> = out.iter().map(|i| i.m).collect();
        assert_ne!(ms, (0..100).collect::<Vec<_>>());
        ms.sort();
        assert_eq!(ms, (0..100).collect::<Vec<_>>());
    }
}
