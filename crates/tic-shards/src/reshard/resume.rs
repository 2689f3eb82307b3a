//! The completion protocol on the output side: what the output folder holds before a run
//! (nothing, an interrupted run of this plan, this finished reshard, or something else), the
//! checks a kept shard must pass, and getting the folder ready for pass 2.

use super::input::map_location;
use super::meta::{crc_hex, ReshardMeta, ShardRecord, META_FILE, PLAN_FINGERPRINT};
use super::{Job, ReshardSummary, PLAN_FILE};
use crate::atomic;
use crate::counts::stats_json;
use crate::lock::LOCK_FILE;
use crate::shardfmt::ShardFormat;
use crate::storage::Location;
use crate::wds::scan_shard;
use anyhow::{bail, Result};
use rayon::prelude::*;
use serde_json::Value;
use tracing::{info, warn};

/// What the output folder holds before writing.
pub(super) enum OutputState {
    /// Nothing (or only temporary files and the lock).
    Empty,
    /// An interrupted run of the same plan (its plan file).
    Resumable,
    /// This reshard, finished: its `meta.json`.
    Complete(ReshardMeta),
    /// Something else, with this many entries.
    Foreign(usize),
}

/// What `out` holds, for a run whose plan fingerprint is `fp`.
pub(super) fn output_state(out: &Location, fp: &str) -> Result<OutputState> {
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
    let meta = out.join(META_FILE);
    if meta.exists()? {
        if let Ok(v) = ReshardMeta::from_slice(&meta.read()?) {
            if v.plan_fingerprint() == Some(fp) {
                return Ok(OutputState::Complete(v));
            }
        }
    }
    let plan = out.join(PLAN_FILE);
    if plan.exists()? {
        let v: Value = serde_json::from_slice(&plan.read()?).unwrap_or(Value::Null);
        if v.get(PLAN_FINGERPRINT).and_then(Value::as_str) == Some(fp) {
            return Ok(OutputState::Resumable);
        }
    }
    Ok(OutputState::Foreign(entries.len()))
}

/// Removes everything in `out` but the lock (`--overwrite`).
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

/// Checks an output shard left by an interrupted run before keeping it: its stats file says
/// `n` samples, its tar reads back with exactly `n` samples and ends with the end-of-archive
/// blocks. Returns its record, or why it cannot be kept.
pub(super) fn check_kept_shard(
    out: &Location,
    tar_name: &str,
    stats: &Location,
    n: u64,
) -> Result<ShardRecord, String> {
    let st = stats.read().map_err(|e| format!("{e:#}"))?;
    if st != stats_json(n).as_bytes() {
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
fn check_finished(
    out: &Location,
    meta: &ReshardMeta,
    count: u64,
    out_fmt: &ShardFormat,
    out_stats_fmt: &ShardFormat,
    verify: bool,
    pool: &rayon::ThreadPool,
) -> Result<(KeptRecords, Vec<(u64, String)>)> {
    let records = match meta.shard_records() {
        Some(r) if r.len() as u64 == count => Some(r),
        _ => {
            warn!(
                "{}: no shard records (written by an older tic-reshard?): checking only that the shards exist",
                out.join(META_FILE)
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

/// Records of finished output shards kept from an earlier run, by output shard index.
pub(super) type KeptRecords = Vec<Option<ShardRecord>>;

impl Job<'_> {
    /// Settles what the output folder holds: `None` when it already holds this reshard intact
    /// (nothing to do), else the records of the finished shards kept (damaged ones are
    /// removed, to be written again; `--overwrite` clears a foreign folder).
    pub(super) fn prepare_output(
        &self,
        summary: &mut ReshardSummary,
        fp: &str,
        plan_bytes: &str,
    ) -> Result<Option<KeptRecords>> {
        let (args, output) = (self.args, &self.output);
        let meta_loc = output.join(META_FILE);
        match output_state(output, fp)? {
            OutputState::Complete(meta) => {
                return self.recheck_finished(summary, &meta, plan_bytes)
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
                clear_output(output)?;
            }
            OutputState::Empty => {}
        }
        Ok(Some(vec![None; summary.output_shard_count as usize]))
    }

    /// A finished output of this plan: checks every shard against `meta` (sizes, CRC-32 with
    /// `--verify`). `None` when all are intact; else the damaged ones are removed (after the
    /// plan file is written and `meta.json` removed) and the intact ones' records returned.
    fn recheck_finished(
        &self,
        summary: &mut ReshardSummary,
        meta: &ReshardMeta,
        plan_bytes: &str,
    ) -> Result<Option<KeptRecords>> {
        let (args, output, out_fmt) = (self.args, &self.output, &self.out_fmt);
        let (intact, damaged) = check_finished(
            output,
            meta,
            summary.output_shard_count,
            out_fmt,
            &self.out_stats_fmt,
            args.verify,
            &self.pool,
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
            // A kill between writing meta.json and removing the plan leaves the plan behind:
            // the finished output of an uninterrupted run has none.
            let plan = output.join(PLAN_FILE);
            if plan.exists()? {
                plan.remove()?;
            }
            return Ok(None);
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
        output.join(META_FILE).remove()?;
        for (o, _) in &damaged {
            output.join(&self.out_stats_fmt.format(*o)).remove()?;
            output.join(&out_fmt.format(*o)).remove()?;
            summary.redone_shards.push(out_fmt.format(*o));
        }
        Ok(Some(intact))
    }

    /// Starts writing: removes temporary files of a run killed before it wrote anything else
    /// (e.g. mid plan file), creates the folder, writes the plan file and `sample_ids.npy`
    /// (the subset as given).
    pub(super) fn start_output(&self, plan_bytes: &str) -> Result<()> {
        let output = &self.output;
        if let Some(dir) = output.as_local() {
            atomic::remove_stale_temps(dir)?;
        }
        output.create_dir_all()?;
        output.join(PLAN_FILE).write(plan_bytes.as_bytes())?;
        let ids = match (&self.subset_loc, &self.subset.stdin) {
            (Some(loc), _) => loc.read()?,
            (None, Some(raw)) => raw.clone(),
            (None, None) => unreachable!("a subset comes from a file or from standard input"),
        };
        output.join("sample_ids.npy").write(&ids)
    }
}
