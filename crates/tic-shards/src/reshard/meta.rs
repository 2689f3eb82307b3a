//! What a reshard records: `meta.json` (the completion marker: every argument, the counts, each
//! shard's size and CRC-32), the plan fingerprint and the optional output size table (the stats
//! files and the table are `crate::stats`' formats); and how `meta.json` is read back, by a rerun
//! and by other tools ([`ReshardMeta`], [`check_complete`]).

use super::scan::InputShard;
use super::{input::Subset, Job, ReshardArgs, ReshardSummary, PLAN_FILE};
use crate::pyjson;
use crate::storage::Location;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tracing::warn;

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

/// The completion marker of a reshard's output folder.
pub const META_FILE: &str = "meta.json";

// The keys of `meta.json` that other tools and reruns read back ([`ReshardMeta`]).
const OUTPUT_COUNT: &str = "output_count";
const OUTPUT_SHARD_COUNT: &str = "output_shard_count";
const OUTPUT_SHARD_FORMAT: &str = "output_shard_format";
const COMPLETE: &str = "complete";
const DAMAGED_INPUTS: &str = "damaged_inputs";
/// Also the key of the plan file's fingerprint.
pub(super) const PLAN_FINGERPRINT: &str = "plan_fingerprint";
const SHARDS: &str = "shards";

/// A `meta.json` read back (by a rerun, `tic-wds-convert`, `tic-stats` / `tic-sizes` and
/// tic-train): the JSON object, with the fields they use. Each field is `None` when absent or
/// of another type (older or hand-made files); each reader words its own error for that.
#[derive(Debug, Clone, PartialEq)]
pub struct ReshardMeta(Value);

impl ReshardMeta {
    /// Parses the bytes of a `meta.json` (any JSON value parses; its fields may be missing).
    pub fn from_slice(bytes: &[u8]) -> serde_json::Result<Self> {
        serde_json::from_slice(bytes).map(Self)
    }

    fn u64_field(&self, key: &str) -> Option<u64> {
        self.0.get(key).and_then(Value::as_u64)
    }

    /// Samples written (`output_count`).
    pub fn output_count(&self) -> Option<u64> {
        self.u64_field(OUTPUT_COUNT)
    }

    /// Shards written (`output_shard_count`).
    pub fn output_shard_count(&self) -> Option<u64> {
        self.u64_field(OUTPUT_SHARD_COUNT)
    }

    /// The shard name pattern (`output_shard_format`, e.g. `{:08d}.tar`).
    pub fn output_shard_format(&self) -> Option<&str> {
        self.0.get(OUTPUT_SHARD_FORMAT).and_then(Value::as_str)
    }

    /// The inputs whose loss made the output incomplete, when `complete` is `false` (joined
    /// with `, `); `None` when the output is complete or the file predates the field.
    pub fn lost_inputs(&self) -> Option<String> {
        if self.0.get(COMPLETE) != Some(&Value::Bool(false)) {
            return None;
        }
        Some(
            self.0
                .get(DAMAGED_INPUTS)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default(),
        )
    }

    /// The fingerprint of the plan that wrote it.
    pub fn plan_fingerprint(&self) -> Option<&str> {
        self.0.get(PLAN_FINGERPRINT).and_then(Value::as_str)
    }

    /// Each finished shard's record (`shards`), if present and well-formed.
    pub fn shard_records(&self) -> Option<Vec<ShardRecord>> {
        self.0
            .get(SHARDS)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }
}

/// Formats a CRC-32 as `meta.json` records it.
pub(super) fn crc_hex(crc: u32) -> String {
    format!("{crc:08x}")
}

/// The plan fingerprint: a hash of the inputs (as scanned) and of the settings that shape the
/// output. A rerun with the same fingerprint resumes or finds the output complete.
pub(super) fn fingerprint(
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

/// Python's `str()` of an optional value (`None` when absent), as resharder.py's meta.json.
fn py_str(v: &Option<impl ToString>) -> String {
    v.as_ref().map_or("None".to_string(), |x| x.to_string())
}

/// Python's `str()` of a bool.
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
    put(OUTPUT_SHARD_FORMAT, args.output_shard_format.clone());
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
    m.insert(OUTPUT_COUNT.into(), num(s.output_count));
    m.insert("blur_count".into(), num(0));
    m.insert("blur_time".into(), Value::from(0.0));
    m.insert(OUTPUT_SHARD_COUNT.into(), num(s.output_shard_count));
    m.insert("worker_success".into(), num(workers as u64));
    m.insert("dropped_count".into(), num(s.dropped_count));
    m.insert("error_count".into(), num(s.error_count));
    m.insert("not_found_count".into(), num(s.not_found_count));
    m.insert("skipped_count".into(), num(s.skipped_count));
    m.insert(COMPLETE.into(), Value::Bool(s.complete()));
    m.insert(DAMAGED_INPUTS.into(), json!(s.damaged_inputs));
    m.insert(
        "errors".into(),
        json!(errors.iter().take(1000).collect::<Vec<_>>()),
    );
    m.insert(PLAN_FINGERPRINT.into(), Value::String(fp.to_string()));
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
    m.insert(SHARDS.into(), json!(records));
    Value::Object(m)
}

/// Refuses a folder whose `meta.json` (a `tic-reshard` output) says `"complete": false`, naming
/// the damaged inputs and `flag`, the option that accepts the loss; with `accept` it only warns.
/// Folders without `meta.json`, or whose `meta.json` predates the `complete` field, pass.
pub fn check_complete(dir: &Location, accept: bool, flag: &str) -> Result<()> {
    let meta = dir.join(META_FILE);
    if !meta.exists()? {
        return Ok(());
    }
    let v = ReshardMeta::from_slice(&meta.read()?)
        .with_context(|| format!("{meta}: not valid JSON"))?;
    let Some(damaged) = v.lost_inputs() else {
        return Ok(());
    };
    if accept {
        warn!("{dir} is an incomplete reshard (input lost in {damaged}); using it anyway ({flag})");
        return Ok(());
    }
    bail!(
        "{dir} is an incomplete reshard: {meta} says \"complete\": false (input lost in {damaged}); \
         repair the input and rerun tic-reshard, or pass {flag} to use it anyway"
    )
}

impl Job<'_> {
    /// Writes the output size table (`--write-shard-table`), then the completion marker
    /// `meta.json`, then removes the plan file (the lock goes when the run returns).
    pub(super) fn finish(
        &self,
        summary: &ReshardSummary,
        fp: &str,
        errors: &[String],
        records: &[ShardRecord],
    ) -> Result<()> {
        let (args, output) = (self.args, &self.output);
        if args.write_shard_table {
            let mut w: Vec<(&str, u64)> = records
                .iter()
                .map(|r| (r.name.as_str(), r.samples))
                .collect();
            w.sort();
            let table = w.into_iter().map(|(k, v)| (k.to_string(), v));
            output
                .join(&args.shard_table)
                .write(crate::counts::sizes_json(table).as_bytes())?;
        }
        // The completion marker, last; then the plan goes.
        let meta = meta_json(args, summary, self.workers, fp, errors, records);
        output
            .join(META_FILE)
            .write(pyjson::to_string(&meta).as_bytes())?;
        output.join(PLAN_FILE).remove()
    }
}
