//! The per-shard sample-count files of a shard folder: a shard's `{stem}_stats.json`
//! (`{"successes": n}`, as TiC's `generate_stats.py` and DataComp's downloader write it) and a
//! folder's `sizes.json` table (TiC's `add_sizes.py`). Defined here, below every tool that
//! writes them (`tic-stats` / `tic-sizes` in [`crate::stats`], `tic-reshard`, `tic-make-tars`,
//! `tic-synth`, `tic-wds-convert`) and every reader (tic-train's shard lists).

use crate::pyjson;
use crate::storage::Location;
use anyhow::{Context, Result};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// A folder's table of sample counts per shard, `{"00000000.tar": n, …}` (TiC's `add_sizes.py`).
pub const SIZES_FILE: &str = "sizes.json";

/// What follows a shard's stem in the name of its stats file: `{stem}_stats.json` counts the
/// samples of `{stem}.tar`.
pub const STATS_SUFFIX: &str = "_stats.json";

/// The stats file of the shard `tar_name` (`00000012.tar` → `00000012_stats.json`).
pub fn stats_file_of(tar_name: &str) -> String {
    format!("{}{STATS_SUFFIX}", tar_name.trim_end_matches(".tar"))
}

/// The shard a stats file counts (`00000012_stats.json` → `00000012.tar`).
pub fn tar_of_stats_file(stats_name: &str) -> String {
    format!("{}.tar", stats_name.trim_end_matches(STATS_SUFFIX))
}

/// A stats file as `tic-stats`, `tic-reshard` and `tic-make-tars` write it: `{"successes": n}`
/// (DataComp's download stats carry more fields; readers use only this one).
pub fn stats_json(n: u64) -> String {
    pyjson::to_string(&json!({ "successes": n }))
}

/// The sample count a stats file records (its `successes`), if it has one.
pub fn stats_successes(stats: &Value) -> Option<u64> {
    stats.get("successes").and_then(Value::as_u64)
}

/// A `sizes.json` table with `entries` in the order given, as Python's `json.dump` writes it
/// (every writer gives them sorted by name).
pub fn sizes_json(entries: impl IntoIterator<Item = (String, u64)>) -> String {
    let m: Map<String, Value> = entries.into_iter().map(|(k, n)| (k, json!(n))).collect();
    pyjson::to_string(&m)
}

/// The shard name → sample count table of a `sizes.json`.
pub fn parse_sizes(bytes: &[u8]) -> serde_json::Result<BTreeMap<String, u64>> {
    serde_json::from_slice(bytes)
}

/// Reads a folder's sample count per shard: `sizes.json` if present, else the stats files.
pub fn shard_sizes(dir: &Location) -> Result<BTreeMap<String, u64>> {
    let sizes = dir.join(SIZES_FILE);
    if sizes.exists()? {
        return parse_sizes(&sizes.read()?)
            .with_context(|| format!("{sizes}: expected a JSON object of shard name -> count"));
    }
    let mut out = BTreeMap::new();
    for e in dir
        .list()?
        .into_iter()
        .filter(|e| e.name.ends_with(STATS_SUFFIX))
    {
        let loc = dir.join(&e.name);
        let v: Value =
            serde_json::from_slice(&loc.read()?).with_context(|| format!("{loc}: not JSON"))?;
        if let Some(n) = stats_successes(&v) {
            out.insert(tar_of_stats_file(&e.name), n);
        }
    }
    Ok(out)
}
