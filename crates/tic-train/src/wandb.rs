//! W&B offline runs: the `run-ID.wandb` transaction log that `--report_to wandb` writes and
//! `wandb sync` uploads, defined here and nowhere else.
//!
//! Why this format: it is what `wandb.init(mode="offline")` writes and the only input of
//! `wandb sync` (wandb ≥ 0.30 removed `wandb sync --sync-tensorboard`, the other way to upload
//! curves that were not logged through the W&B SDK), so a run can be trained without network
//! and uploaded later exactly as an offline OpenCLIP run would be.
//!
//! Layout: `{dir}/offline-run-YYYYMMDD_HHMMSS-ID/run-ID.wandb` (the folder name is how
//! `wandb sync` tells offline runs from online ones). The file is a LevelDB-style log: a 7-byte
//! header (`:W&B`, `0xBEE1` little endian, version 0), then 32 KiB blocks of chunks, each
//! `crc32` (IEEE, of the chunk type byte followed by the data; little endian), `u16` length,
//! a type byte (1 full, 2 first, 3 middle, 4 last: a record longer than a block's room is cut)
//! and the data; fewer than 7 bytes left in a block are zero padding. Each record is a
//! `wandb_internal.Record` protobuf; the hand-written `prost` structs below carry the fields
//! tic-train writes, with the field numbers of W&B's `wandb_internal.proto`: `Record.num` 1,
//! `history` 2, `summary` 3, `run` 17, `exit` 18, `header` 21; `RunRecord.run_id` 1,
//! `project` 3, `config` 4, `display_name` 8, `notes` 9, `host` 13, `start_time` 17;
//! `ConfigRecord.update` / `SummaryRecord.update` 1 (items: `key` 1, `value_json` 16);
//! `HistoryRecord.item` 1 (`key` 1, `value_json` 16), `step` 2 (`num` 1);
//! `RunExitRecord.exit_code` 1, `runtime` 2; `HeaderRecord.version_info` 1 (`producer` 1).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use prost::Message;

/// The file header: `:W&B`, magic `0xBEE1` (little endian), version 0.
pub const HEADER: [u8; 7] = [b':', b'W', b'&', b'B', 0xe1, 0xbe, 0];
/// Log block size.
pub const BLOCK: usize = 32 * 1024;
/// Offline run folders start with this (what `wandb sync` looks for).
pub const OFFLINE_PREFIX: &str = "offline-run-";

const CHUNK_HEADER: usize = 7;
const FULL: u8 = 1;
const FIRST: u8 = 2;
const MIDDLE: u8 = 3;
const LAST: u8 = 4;

/// `wandb_internal.Record` (the fields tic-train writes).
#[derive(Clone, PartialEq, Message)]
pub struct Record {
    /// Sequence number, from 1.
    #[prost(int64, tag = "1")]
    pub num: i64,
    /// The payload.
    #[prost(oneof = "RecordType", tags = "2, 3, 17, 18, 21")]
    pub record_type: Option<RecordType>,
}

/// `Record.record_type`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum RecordType {
    /// One row of the run's history.
    #[prost(message, tag = "2")]
    History(HistoryRecord),
    /// Summary updates (the run's latest values).
    #[prost(message, tag = "3")]
    Summary(SummaryRecord),
    /// The run: id, project, config.
    #[prost(message, tag = "17")]
    Run(RunRecord),
    /// The run ended.
    #[prost(message, tag = "18")]
    Exit(RunExitRecord),
    /// The file's first record: who wrote it.
    #[prost(message, tag = "21")]
    Header(HeaderRecord),
}

/// `wandb_internal.HeaderRecord`.
#[derive(Clone, PartialEq, Message)]
pub struct HeaderRecord {
    /// Who wrote the file.
    #[prost(message, optional, tag = "1")]
    pub version_info: Option<VersionInfo>,
}

/// `wandb_internal.VersionInfo`.
#[derive(Clone, PartialEq, Message)]
pub struct VersionInfo {
    /// The writer's name and version.
    #[prost(string, tag = "1")]
    pub producer: String,
}

/// `wandb_internal.RunRecord` (the fields tic-train writes).
#[derive(Clone, PartialEq, Message)]
pub struct RunRecord {
    /// The run's id (every invocation of a run uses the same: `wandb sync` joins them).
    #[prost(string, tag = "1")]
    pub run_id: String,
    /// The W&B project.
    #[prost(string, tag = "3")]
    pub project: String,
    /// The run's config.
    #[prost(message, optional, tag = "4")]
    pub config: Option<ConfigRecord>,
    /// The run's name in the UI.
    #[prost(string, tag = "8")]
    pub display_name: String,
    /// Notes.
    #[prost(string, tag = "9")]
    pub notes: String,
    /// The machine.
    #[prost(string, tag = "13")]
    pub host: String,
    /// When this invocation started.
    #[prost(message, optional, tag = "17")]
    pub start_time: Option<Timestamp>,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, PartialEq, Message)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds within the second.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// `wandb_internal.ConfigRecord`.
#[derive(Clone, PartialEq, Message)]
pub struct ConfigRecord {
    /// Keys set.
    #[prost(message, repeated, tag = "1")]
    pub update: Vec<Item>,
}

/// `wandb_internal.SummaryRecord`.
#[derive(Clone, PartialEq, Message)]
pub struct SummaryRecord {
    /// Keys set.
    #[prost(message, repeated, tag = "1")]
    pub update: Vec<Item>,
}

/// A key and its JSON value: `ConfigItem`, `SummaryItem` and `HistoryItem` share these
/// field numbers.
#[derive(Clone, PartialEq, Message)]
pub struct Item {
    /// The key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// The value, as JSON.
    #[prost(string, tag = "16")]
    pub value_json: String,
}

/// `wandb_internal.HistoryRecord`: one row.
#[derive(Clone, PartialEq, Message)]
pub struct HistoryRecord {
    /// The row's values (`_step`, `_timestamp`, `_runtime` included, as the SDK writes them).
    #[prost(message, repeated, tag = "1")]
    pub item: Vec<Item>,
    /// The row's step.
    #[prost(message, optional, tag = "2")]
    pub step: Option<HistoryStep>,
}

/// `wandb_internal.HistoryStep`.
#[derive(Clone, PartialEq, Message)]
pub struct HistoryStep {
    /// The step.
    #[prost(int64, tag = "1")]
    pub num: i64,
}

/// `wandb_internal.RunExitRecord`.
#[derive(Clone, PartialEq, Message)]
pub struct RunExitRecord {
    /// The process's exit code.
    #[prost(int32, tag = "1")]
    pub exit_code: i32,
    /// Seconds the invocation ran.
    #[prost(int32, tag = "2")]
    pub runtime: i32,
}

/// Appends `record` to a log whose length so far is `at` bytes, cut into chunks at block
/// boundaries; returns the bytes to append.
pub fn frame(at: usize, record: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(record.len() + CHUNK_HEADER);
    let mut pos = at;
    let mut rest = record;
    let mut first = true;
    loop {
        let room = BLOCK - pos % BLOCK;
        if room < CHUNK_HEADER {
            out.extend(std::iter::repeat_n(0u8, room));
            pos += room;
            continue;
        }
        let n = rest.len().min(room - CHUNK_HEADER);
        let last = n == rest.len();
        let kind = match (first, last) {
            (true, true) => FULL,
            (true, false) => FIRST,
            (false, false) => MIDDLE,
            (false, true) => LAST,
        };
        let mut h = crc32fast::Hasher::new();
        h.update(&[kind]);
        h.update(&rest[..n]);
        out.extend_from_slice(&h.finalize().to_le_bytes());
        out.extend_from_slice(&(n as u16).to_le_bytes());
        out.push(kind);
        out.extend_from_slice(&rest[..n]);
        pos += CHUNK_HEADER + n;
        rest = &rest[n..];
        first = false;
        if last {
            return out;
        }
    }
}

/// The records of a `.wandb` file (header and every chunk's CRC checked) and whether a torn
/// last record was left out.
pub fn read_records(bytes: &[u8]) -> Result<(Vec<Record>, bool)> {
    if bytes.get(..HEADER.len()) != Some(&HEADER[..]) {
        bail!("not a W&B transaction log (no `:W&B` header)");
    }
    let (mut pos, mut records, mut pending) = (HEADER.len(), Vec::new(), Vec::new());
    while pos < bytes.len() {
        let room = BLOCK - pos % BLOCK;
        if room < CHUNK_HEADER {
            pos += room;
            continue;
        }
        let Some(h) = bytes.get(pos..pos + CHUNK_HEADER) else {
            return Ok((records, true));
        };
        let n = u16::from_le_bytes([h[4], h[5]]) as usize;
        let Some(data) = bytes.get(pos + CHUNK_HEADER..pos + CHUNK_HEADER + n) else {
            return Ok((records, true));
        };
        let mut c = crc32fast::Hasher::new();
        c.update(&h[6..7]);
        c.update(data);
        if c.finalize().to_le_bytes() != h[..4] {
            bail!("chunk at byte {pos}: the CRC does not match");
        }
        pending.extend_from_slice(data);
        if h[6] == FULL || h[6] == LAST {
            records.push(Record::decode(&pending[..]).context("not a wandb_internal.Record")?);
            pending.clear();
        }
        pos += CHUNK_HEADER + n;
    }
    Ok((records, !pending.is_empty()))
}

/// The step of a history row or of the summary update written with it (its `_step`).
fn row_step(record: &Record) -> Option<(i64, &[Item])> {
    match &record.record_type {
        Some(RecordType::History(h)) => Some((h.step.as_ref().map_or(0, |s| s.num), &h.item)),
        Some(RecordType::Summary(s)) => {
            let step = s.update.iter().find(|i| i.key == "_step")?;
            Some((step.value_json.parse().ok()?, &s.update))
        }
        _ => None,
    }
}

/// Rewrites the `.wandb` file at `path` (atomically) without the history rows, and the summary
/// updates written with them, for which `keep(step, items)` is false; a torn last record is
/// dropped too. Returns how many records were dropped.
pub fn retain_rows(path: &Path, keep: impl Fn(i64, &[Item]) -> bool) -> Result<usize> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let (records, torn) = read_records(&bytes).with_context(|| format!("{}", path.display()))?;
    let n = records.len();
    let kept: Vec<Record> = records
        .into_iter()
        .filter(|r| row_step(r).is_none_or(|(step, items)| keep(step, items)))
        .collect();
    let dropped = n - kept.len();
    if dropped == 0 && !torn {
        return Ok(0);
    }
    let mut out = HEADER.to_vec();
    for (k, mut r) in kept.into_iter().enumerate() {
        r.num = k as i64 + 1;
        let framed = frame(out.len(), &r.encode_to_vec());
        out.extend_from_slice(&framed);
    }
    tic_shards::atomic::write_atomic(path, &out)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(dropped)
}

/// The `.wandb` files of run `id`'s offline runs in `dir` that `wandb sync` has not uploaded
/// (no `.wandb.synced` marker beside them), in folder-name (time) order.
pub fn unsynced_runs(dir: &Path, id: &str) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if !dir.is_dir() {
        return Ok(out);
    }
    let suffix = format!("-{id}");
    for e in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let name = e?.file_name().to_string_lossy().into_owned();
        if name.starts_with(OFFLINE_PREFIX) && name.ends_with(&suffix) {
            let f = dir.join(&name).join(format!("run-{id}.wandb"));
            if f.is_file() && !f.with_extension("wandb.synced").exists() {
                out.push(f);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `YYYYMMDD_HHMMSS` (UTC) of `secs` since the Unix epoch, as W&B names run folders.
fn utc_stamp(secs: u64) -> String {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (hh, mm, ss) = (rem / 3600, rem / 60 % 60, rem % 60);
    format!("{y:04}{m:02}{d:02}_{hh:02}{mm:02}{ss:02}")
}

/// A W&B run id from a run name: letters, digits, `-` and `_` kept, anything else `-`.
pub fn run_id(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// What a new offline run says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    /// Run id (see [`run_id`]).
    pub id: String,
    /// W&B project.
    pub project: String,
    /// Display name.
    pub name: String,
    /// Notes.
    pub notes: String,
    /// The config: a JSON object, one config key per member.
    pub config: serde_json::Value,
}

/// Appends records to one invocation's offline run, flushing after each.
#[derive(Debug)]
pub struct OfflineRun {
    file: BufWriter<File>,
    path: PathBuf,
    len: usize,
    num: i64,
    started: Instant,
}

fn now() -> (u64, u32) {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or((0, 0), |d| (d.as_secs(), d.subsec_nanos()))
}

fn item(key: &str, value: &serde_json::Value) -> Item {
    Item {
        key: key.to_string(),
        value_json: value.to_string(),
    }
}

impl OfflineRun {
    /// A new `offline-run-YYYYMMDD_HHMMSS-ID/run-ID.wandb` in `dir` (a later second when that
    /// folder exists), starting with the header and the run record.
    pub fn create(dir: &Path, info: &RunInfo) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let (secs, nanos) = now();
        let mut t = secs;
        let folder = loop {
            let f = dir.join(format!("{OFFLINE_PREFIX}{}-{}", utc_stamp(t), info.id));
            match std::fs::create_dir(&f) {
                Ok(()) => break f,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => t += 1,
                Err(e) => return Err(e).with_context(|| format!("creating {}", f.display())),
            }
        };
        let path = folder.join(format!("run-{}.wandb", info.id));
        let mut file = BufWriter::new(
            File::create(&path).with_context(|| format!("creating {}", path.display()))?,
        );
        file.write_all(&HEADER)?;
        let mut run = Self {
            file,
            path,
            len: HEADER.len(),
            num: 0,
            started: Instant::now(),
        };
        let header = HeaderRecord {
            version_info: Some(VersionInfo {
                producer: format!("tic-train {}", env!("CARGO_PKG_VERSION")),
            }),
        };
        run.write(RecordType::Header(header))?;
        let config = match &info.config {
            serde_json::Value::Object(m) => m.iter().map(|(k, v)| item(k, v)).collect(),
            _ => Vec::new(),
        };
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        run.write(RecordType::Run(RunRecord {
            run_id: info.id.clone(),
            project: info.project.clone(),
            config: Some(ConfigRecord { update: config }),
            display_name: info.name.clone(),
            notes: info.notes.clone(),
            host: host.trim().to_string(),
            start_time: Some(Timestamp {
                seconds: secs as i64,
                nanos: nanos as i32,
            }),
        }))?;
        Ok(run)
    }

    /// The `.wandb` file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&mut self, record: RecordType) -> Result<()> {
        self.num += 1;
        let bytes = Record {
            num: self.num,
            record_type: Some(record),
        }
        .encode_to_vec();
        let framed = frame(self.len, &bytes);
        self.len += framed.len();
        self.file
            .write_all(&framed)
            .and_then(|()| self.file.flush())
            .with_context(|| format!("writing {}", self.path.display()))
    }

    /// One history row at `step` with `values` (non-finite ones left out: JSON has no NaN),
    /// plus the SDK's `_step`, `_timestamp` and `_runtime`; the summary gets the same values.
    pub fn log(&mut self, step: u64, values: &[(&str, serde_json::Value)]) -> Result<()> {
        let (secs, nanos) = now();
        let mut items: Vec<Item> = values
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| item(k, v))
            .collect();
        items.push(item("_step", &step.into()));
        items.push(item(
            "_timestamp",
            &(secs as f64 + f64::from(nanos) * 1e-9).into(),
        ));
        items.push(item(
            "_runtime",
            &self.started.elapsed().as_secs_f64().into(),
        ));
        self.write(RecordType::History(HistoryRecord {
            item: items.clone(),
            step: Some(HistoryStep { num: step as i64 }),
        }))?;
        self.write(RecordType::Summary(SummaryRecord { update: items }))
    }

    /// Ends the run: an exit record with exit code 0.
    pub fn finish(mut self) -> Result<()> {
        let runtime = self.started.elapsed().as_secs() as i32;
        self.write(RecordType::Exit(RunExitRecord {
            exit_code: 0,
            runtime,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps_and_ids() {
        assert_eq!(utc_stamp(0), "19700101_000000");
        assert_eq!(utc_stamp(951_825_600), "20000229_120000");
        assert_eq!(utc_stamp(1_796_556_203), "20261206_112323");
        assert_eq!(run_id("cumulative-exp_2016"), "cumulative-exp_2016");
        assert_eq!(run_id("a b/c"), "a-b-c");
    }

    /// Records cross block boundaries (first/middle/last chunks, padding) and read back with
    /// their CRCs checked; a torn tail is tolerated, a flipped bit is not.
    #[test]
    fn records_round_trip_across_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let info = RunInfo {
            id: "r".into(),
            project: "p".into(),
            name: "r".into(),
            notes: String::new(),
            config: serde_json::json!({"batch_size": 16, "note": "x".repeat(70_000)}),
        };
        let mut run = OfflineRun::create(dir.path(), &info).unwrap();
        for s in 0..400u64 {
            run.log(
                s,
                &[
                    ("train/loss", (s as f64).into()),
                    ("x", serde_json::Value::Null),
                ],
            )
            .unwrap();
        }
        let path = run.path().to_path_buf();
        run.finish().unwrap();
        assert!(path
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(OFFLINE_PREFIX));
        let bytes = std::fs::read(&path).unwrap();
        let (recs, torn) = read_records(&bytes).unwrap();
        assert!(!torn);
        assert_eq!(recs.len(), 2 + 2 * 400 + 1);
        assert!(
            matches!(&recs[1].record_type, Some(RecordType::Run(r)) if r.config.as_ref().unwrap().update.len() == 2)
        );
        let Some(RecordType::History(h)) = &recs[2 + 2 * 399].record_type else {
            panic!("{:?}", recs[2 + 2 * 399]);
        };
        assert_eq!(h.step.as_ref().unwrap().num, 399);
        assert_eq!(
            (h.item[0].key.as_str(), h.item[0].value_json.as_str()),
            ("train/loss", "399.0")
        );
        assert!(matches!(
            recs.last().unwrap().record_type,
            Some(RecordType::Exit(_))
        ));
        assert_eq!(
            recs.iter().map(|r| r.num).collect::<Vec<_>>(),
            (1..=803).collect::<Vec<_>>()
        );

        assert_eq!(unsynced_runs(dir.path(), "r").unwrap(), vec![path.clone()]);
        let dropped = retain_rows(&path, |step, _| step < 10).unwrap();
        assert_eq!(dropped, 2 * 390);
        let (kept, _) = read_records(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(kept.len(), 2 + 2 * 10 + 1);
        assert_eq!(
            kept.iter().map(|r| r.num).collect::<Vec<_>>(),
            (1..=23).collect::<Vec<_>>()
        );
        assert_eq!(kept[..21], recs[..21]);
        std::fs::write(path.with_extension("wandb.synced"), "").unwrap();
        assert!(unsynced_runs(dir.path(), "r").unwrap().is_empty());

        let (recs, torn) = read_records(&bytes[..bytes.len() - 3]).unwrap();
        assert_eq!((recs.len(), torn), (802, true));
        let mut bad = bytes.clone();
        bad[BLOCK + 100] ^= 1;
        assert!(read_records(&bad).is_err());
    }
}
