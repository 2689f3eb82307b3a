//! Pass 1: every input shard's tar headers and `json` members are scanned (in parallel) for
//! samples whose uid is in the subset; the matches are then numbered in input order and the
//! run's counts summed.

use super::input::map_location;
use super::{Job, ReshardSummary};
use crate::cli;
use crate::npy::UidView;
use crate::storage::Location;
use crate::uid::Uid;
use crate::wds::{member_bytes, scan_shard, SampleRef, ShardError};
use rayon::prelude::*;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use tracing::{error, info, warn};

/// One subset match in an input shard.
#[derive(Debug, Clone, Copy)]
pub(super) struct Match {
    /// Index of the sample in the shard's scan.
    pub(super) sample: u32,
    /// Copies to write (multiplicity in the subset).
    pub(super) k: u32,
    /// First `j` of its keys (copies of the same uid in earlier input samples).
    pub(super) base: u32,
    /// Position of the uid's first row in the subset.
    pub(super) first: u64,
}

/// Pass-1 result for one input shard.
#[derive(Debug, Default)]
pub(super) struct InputShard {
    /// File name in the input folder.
    pub(super) name: String,
    /// Its samples in the subset, in tar order.
    pub(super) matches: Vec<Match>,
    /// Samples with a readable json uid.
    pub(super) processed: u64,
    /// Samples dropped (skipped as resharder.py does, or for other errors).
    pub(super) dropped: u64,
    /// Of those, the resharder.py skips.
    pub(super) skipped: u64,
    /// The shard could not be read to its end.
    pub(super) damaged: bool,
    /// Problems met, as messages.
    pub(super) errors: Vec<String>,
    /// Size of the shard in bytes.
    pub(super) bytes: u64,
    /// Output samples it gives (copies included).
    pub(super) outputs: u64,
}

/// The part of a sample's json the resharder reads.
#[derive(Deserialize)]
struct UidField {
    uid: Option<Value>,
}

/// Reads the `uid` of a sample's json member; errors name the shard, member and offset.
pub(super) fn sample_uid(data: &[u8], shard: &str, s: &SampleRef) -> Result<(Uid, String), String> {
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

impl Job<'_> {
    /// Pass 1 over every input shard (parallel); the matches come back in input order with
    /// their key numbers.
    pub(super) fn scan_inputs(&self) -> Vec<InputShard> {
        let names = &self.names;
        info!(
            "scanning {} input shards with {} workers",
            names.len(),
            self.workers
        );
        let pb = cli::progress(names.len() as u64, "shards", self.args.quiet > 0);
        pb.set_message("scan");
        let view = self.subset.view();
        let cls_ok = |u: Uid| self.classes.as_ref().is_none_or(|c| c.contains_key(&u));
        let mut shards: Vec<InputShard> = self.pool.install(|| {
            names
                .par_iter()
                .map(|(_, name)| {
                    let r = scan_input(&self.input, name, &view, &cls_ok);
                    pb.inc(1);
                    r
                })
                .collect()
        });
        pb.finish_and_clear();
        number_duplicates(&mut shards, view.len());
        shards
    }

    /// The run's counts from pass 1 (logging a shard table that disagrees, uids not found and
    /// the first errors), and every error met.
    pub(super) fn summarize(&self, shards: &[InputShard]) -> (ReshardSummary, Vec<String>) {
        let mut errors: Vec<String> = Vec::new();
        let mut summary = ReshardSummary::default();
        for s in shards {
            summary.processed_count += s.processed;
            summary.dropped_count += s.dropped;
            summary.skipped_count += s.skipped;
            if s.damaged {
                summary.damaged_inputs.push(s.name.clone());
            }
            summary.output_count += s.outputs;
            summary.input_bytes += s.bytes;
            errors.extend(s.errors.iter().cloned());
            if let Some(t) = &self.table {
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
        summary.not_found_count = count_not_found(shards, &self.subset.view());
        summary.output_shard_count = summary.output_count.div_ceil(self.args.shard_size as u64);
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
        (summary, errors)
    }
}

/// Scans one input shard for subset matches (`cls_ok`: the uid has a class, when `-c` is given).
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
