//! TensorBoard event files (`events.out.tfevents.*`): the format `--report_to tensorboard`
//! writes, defined here and nowhere else.
//!
//! An event file is a sequence of TFRecord records, each `u64` length (little endian), the
//! masked CRC-32C of those 8 bytes, the data, and the masked CRC-32C of the data; each record's
//! data is one `tensorboard.Event` protobuf. The messages below are hand-written `prost`
//! structs carrying only the fields tic-train writes, with the field numbers of TensorBoard's
//! `event.proto` / `summary.proto` (`Event.wall_time` 1, `step` 2, `file_version` 3,
//! `summary` 5, `session_log` 7; `Summary.value` 1; `Summary.Value.tag` 1, `simple_value` 2;
//! `SessionLog.status` 1, `msg` 3): a ~200-line writer instead of a crate (the TensorBoard
//! crates on crates.io are unmaintained and pull an old `protobuf`).
//!
//! A file starts with a `file_version: "brain.Event:2"` event, as TensorFlow's and PyTorch's
//! writers do; version 2 is what makes TensorBoard honour `SessionLog.START` events, which
//! discard every earlier event at or after the START's step (how a resumed run hides the steps
//! a killed one logged after its last checkpoint). The reader here ([`read_events`]) checks
//! both CRCs of every record and tolerates a torn last record (a writer killed mid-write), as
//! TensorBoard does.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use prost::Message;

/// The `file_version` of the first event of every file (TensorBoard honours
/// `SessionLog.START` from version 2 on).
pub const FILE_VERSION: &str = "brain.Event:2";

/// Every event file's name starts with this (TensorBoard reads the files whose names contain
/// `tfevents`, in name order).
pub const FILE_PREFIX: &str = "events.out.tfevents.";

/// `tensorboard.Event`: one record of an event file.
#[derive(Clone, PartialEq, Message)]
pub struct Event {
    /// Seconds since the Unix epoch when the event was written.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// The step the event belongs to (the x axis).
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// What the event carries.
    #[prost(oneof = "What", tags = "3, 5, 7")]
    pub what: Option<What>,
}

/// `Event.what`: the payloads tic-train writes.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum What {
    /// The format version, in a file's first event ([`FILE_VERSION`]).
    #[prost(string, tag = "3")]
    FileVersion(String),
    /// Scalar values.
    #[prost(message, tag = "5")]
    Summary(Summary),
    /// A session status (START: a (re)started run).
    #[prost(message, tag = "7")]
    SessionLog(SessionLog),
}

/// `tensorboard.Summary`: a set of tagged values.
#[derive(Clone, PartialEq, Message)]
pub struct Summary {
    /// The values.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `tensorboard.Summary.Value` with a scalar (`simple_value`, as PyTorch's `add_scalar`).
#[derive(Clone, PartialEq, Message)]
pub struct SummaryValue {
    /// The series' name, e.g. `train/loss`.
    #[prost(string, tag = "1")]
    pub tag: String,
    /// The value (always present, 0 included: it is a `oneof` member in `summary.proto`).
    #[prost(float, optional, tag = "2")]
    pub simple_value: Option<f32>,
}

/// `tensorboard.SessionLog`.
#[derive(Clone, PartialEq, Message)]
pub struct SessionLog {
    /// A [`SessionStatus`] as its number.
    #[prost(enumeration = "SessionStatus", tag = "1")]
    pub status: i32,
    /// A free-form message.
    #[prost(string, tag = "3")]
    pub msg: String,
}

/// `tensorboard.SessionLog.SessionStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SessionStatus {
    /// Not set.
    StatusUnspecified = 0,
    /// A run (re)started at the event's step: TensorBoard discards earlier events at or after it.
    Start = 1,
    /// A run stopped.
    Stop = 2,
    /// A checkpoint was written.
    Checkpoint = 3,
}

impl Event {
    /// An event at `step`, stamped with the current time.
    pub fn now(step: i64, what: What) -> Self {
        let wall_time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Self {
            wall_time,
            step,
            what: Some(what),
        }
    }

    /// The scalars of a summary event, as `(tag, value)` (empty for other events).
    pub fn scalars(&self) -> Vec<(&str, f32)> {
        match &self.what {
            Some(What::Summary(s)) => s
                .value
                .iter()
                .filter_map(|v| Some((v.tag.as_str(), v.simple_value?)))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// TFRecord's CRC mask: rotate right by 15 bits, add a constant.
fn masked_crc(bytes: &[u8]) -> u32 {
    let c = crc32c::crc32c(bytes);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One TFRecord record around `data`.
pub fn frame(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

/// The records' data in `bytes`, CRCs checked, and whether a torn last record (cut short by a
/// kill) was left out. A CRC mismatch is an error naming the record's offset.
pub fn unframe(bytes: &[u8]) -> Result<(Vec<&[u8]>, bool)> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < 12 {
            return Ok((out, true));
        }
        let (len, crc) = (&rest[..8], &rest[8..12]);
        if masked_crc(len).to_le_bytes() != crc {
            bail!("record at byte {at}: the length's CRC does not match");
        }
        let n = usize::try_from(u64::from_le_bytes(len.try_into().expect("8 bytes")))
            .context("record length")?;
        let Some(end) = n.checked_add(16).filter(|&e| e <= rest.len()) else {
            return Ok((out, true));
        };
        let data = &rest[12..12 + n];
        if masked_crc(data).to_le_bytes() != rest[12 + n..end] {
            bail!("record at byte {at}: the data's CRC does not match");
        }
        out.push(data);
        at += end;
    }
    Ok((out, false))
}

/// An event file read back by [`read_events`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventLog {
    /// The events, in file order.
    pub events: Vec<Event>,
    /// A torn last record was left out.
    pub torn_tail: bool,
}

/// Reads an event file: every record's CRCs checked, every event decoded.
pub fn read_events(path: &Path) -> Result<EventLog> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let (records, torn_tail) = unframe(&bytes).with_context(|| format!("{}", path.display()))?;
    let events = records
        .into_iter()
        .map(Event::decode)
        .collect::<Result<_, _>>()
        .with_context(|| format!("{}: not a TensorBoard event", path.display()))?;
    Ok(EventLog { events, torn_tail })
}

/// The event files in `dir`, in the order TensorBoard reads them (by name).
pub fn event_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    if dir.is_dir() {
        for e in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
            let e = e?;
            if e.file_name().to_string_lossy().starts_with(FILE_PREFIX) {
                files.push(e.path());
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Appends events to a new event file, flushing after every [`EventWriter::write`].
#[derive(Debug)]
pub struct EventWriter {
    file: BufWriter<File>,
    path: PathBuf,
}

impl EventWriter {
    /// A new file in `dir` (created when needed) named `events.out.tfevents.SECONDS.HOST.PID`,
    /// its time bumped when needed so that it sorts after every event file already there
    /// (TensorBoard reads a folder's files in name order); starts with the
    /// [`FILE_VERSION`] event.
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().replace(|c: char| !c.is_ascii_alphanumeric(), "-"))
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        let existing = event_files(dir)?;
        let mut secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let name = |secs: u64| format!("{FILE_PREFIX}{secs:010}.{host}.{}", std::process::id());
        while existing
            .last()
            .and_then(|last| last.file_name())
            .is_some_and(|last| last.to_string_lossy().as_ref() >= name(secs).as_str())
        {
            secs += 1;
        }
        let path = dir.join(name(secs));
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        let mut w = Self {
            file: BufWriter::new(file),
            path,
        };
        w.write(&Event::now(0, What::FileVersion(FILE_VERSION.into())))?;
        Ok(w)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `event` and flushes it to the file.
    pub fn write(&mut self, event: &Event) -> Result<()> {
        self.file
            .write_all(&frame(&event.encode_to_vec()))
            .and_then(|()| self.file.flush())
            .with_context(|| format!("writing {}", self.path.display()))
    }

    /// Appends one summary event with the scalars `values` at `step`.
    pub fn scalars(&mut self, step: i64, values: &[(&str, f64)]) -> Result<()> {
        let value = values
            .iter()
            .map(|&(tag, v)| SummaryValue {
                tag: tag.to_string(),
                simple_value: Some(v as f32),
            })
            .collect();
        self.write(&Event::now(step, What::Summary(Summary { value })))
    }

    /// Appends a `SessionLog.START` at `step`: TensorBoard drops every event read before it
    /// (this file's and earlier files') whose step is `step` or later.
    pub fn session_start(&mut self, step: i64, msg: &str) -> Result<()> {
        let log = SessionLog {
            status: SessionStatus::Start as i32,
            msg: msg.to_string(),
        };
        self.write(&Event::now(step, What::SessionLog(log)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known values: CRC-32C of "123456789" is 0xe3069283 (RFC 3720's check value), and a
    /// record's framing is length, masked CRC, data, masked CRC.
    #[test]
    fn framing_is_tfrecord() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        // Rotated right by 15 bits (0x2507c60d), plus 0xa282ead8.
        assert_eq!(masked_crc(b"123456789"), 0xc78a_b0e5);
        let r = frame(b"abc");
        assert_eq!(r.len(), 3 + 16);
        assert_eq!(&r[..8], &3u64.to_le_bytes());
        assert_eq!(&r[12..15], b"abc");
        let (recs, torn) = unframe(&r).unwrap();
        assert_eq!((recs, torn), (vec![&b"abc"[..]], false));
    }

    /// Written events read back (CRCs checked); a torn tail is tolerated, a flipped bit is not;
    /// a second writer's file sorts after the first's.
    #[test]
    fn events_round_trip_and_corruption_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path()).unwrap();
        w.scalars(3, &[("train/loss", 2.5), ("train/lr", 0.0)])
            .unwrap();
        w.session_start(2, "resumed").unwrap();
        let path = w.path().to_path_buf();
        drop(w);
        let log = read_events(&path).unwrap();
        assert!(!log.torn_tail);
        assert_eq!(log.events.len(), 3);
        assert_eq!(
            log.events[0].what,
            Some(What::FileVersion(FILE_VERSION.into()))
        );
        assert_eq!(log.events[1].step, 3);
        assert_eq!(
            log.events[1].scalars(),
            vec![("train/loss", 2.5f32), ("train/lr", 0.0)]
        );
        assert!(matches!(
            &log.events[2].what,
            Some(What::SessionLog(s)) if s.status == SessionStatus::Start as i32 && s.msg == "resumed"
        ));

        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
        let log = read_events(&path).unwrap();
        assert_eq!((log.events.len(), log.torn_tail), (2, true));
        let mut bad = bytes.clone();
        bad[bytes.len() - 8] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        let e = format!("{:#}", read_events(&path).unwrap_err());
        assert!(e.contains("CRC does not match"), "{e}");

        let second = EventWriter::create(dir.path()).unwrap();
        assert_eq!(
            event_files(dir.path()).unwrap(),
            vec![path, second.path().to_path_buf()]
        );
    }
}
