//! What img2dataset 1.40's sample writers (`writer.py`) and `write_stats` leave per shard, for
//! each `--output_format`, and the completion protocol that makes a kill at any moment safe:
//!
//! - `webdataset` ([`webdataset`]): `{id:08d}.tar` with, per successful row, `KEY.jpg`,
//!   `KEY.json` (the row's metadata as `json.dumps(meta, indent=4)`), `KEY.txt` (the caption).
//! - `files` ([`files`]): a folder `{id:08d}/` with the same three files per success.
//! - `parquet` ([`table`]): no samples apart from the table, whose last column (named after the
//!   encoding, binary) holds each success's image.
//! - `dummy`: nothing but the stats file.
//!
//! Every format but `dummy` writes `{id:08d}.parquet` ([`table`]): every input row with `key,
//! status, error_message, width, height, original_width, original_height, exif, sha256`. Keys
//! are `{id * 10^oom + row:0(oom+8)d}` with `oom = ceil(log10(rows per shard))`.
//! `{id:08d}_stats.json` (`count, successes, failed_to_download, failed_to_resize, duration,
//! start_time, end_time, status_dict`) is written last: it marks the shard finished
//! (img2dataset's incremental mode treats a shard with a stats file as done). Everything else is
//! written under temporary names and renamed first, so a shard without its stats file is redone.

pub mod files;
pub mod table;
pub mod webdataset;

use crate::args::OutputFormat;
use anyhow::{Context, Result};
use arrow_array::RecordBatch;
use arrow_schema::DataType;
use serde_json::{json, Map, Value};
use std::fs;
use std::path::{Path, PathBuf};
use tic_shards::pyjson;

/// How a row ended, as img2dataset's `status` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Downloaded and re-encoded.
    Success,
    /// The fetch failed (HTTP error, timeout, opt-out…).
    FailedToDownload,
    /// Fetched but not decodable / not encodable.
    FailedToResize,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 3] = [
        Status::Success,
        Status::FailedToDownload,
        Status::FailedToResize,
    ];

    /// img2dataset's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::FailedToDownload => "failed_to_download",
            Status::FailedToResize => "failed_to_resize",
        }
    }

    /// The status spelled `s` ([`Status::as_str`]), if any.
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// The size fields of a row's record and table, in img2dataset's order ([`RowOutcome::sizes`]).
pub const SIZE_FIELDS: [&str; 4] = ["width", "height", "original_width", "original_height"];

/// The outcome of one row.
#[derive(Clone, Debug)]
pub struct RowOutcome {
    /// Its status.
    pub status: Status,
    /// The error (img2dataset's message), `None` on success.
    pub error_message: Option<String>,
    /// Output and decoded sizes, as [`SIZE_FIELDS`] (success only).
    pub sizes: Option<[u32; 4]>,
    /// EXIF as a JSON string (success only).
    pub exif: Option<String>,
    /// SHA-256 of the downloaded bytes (success only).
    pub sha256: Option<String>,
    /// The encoded image (success only).
    pub image: Option<Vec<u8>>,
}

/// The table `{id:08d}.parquet` of shard `id` (every format but `dummy`).
pub fn table_file(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:08}.parquet"))
}

/// The stats file `{id:08d}_stats.json` of shard `id`: it marks the shard finished.
pub fn stats_file(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:08}_stats.json"))
}

/// img2dataset's `compute_key`.
pub fn sample_key(shard: u64, row: usize, rows_per_shard: usize) -> String {
    let oom = (rows_per_shard as f64).log10().ceil() as u32;
    let width = oom as usize + 8;
    format!("{:0width$}", shard * 10u64.pow(oom) + row as u64)
}

/// Where a shard's successful samples go, per format.
enum Sink {
    Webdataset(webdataset::TarSink),
    Files(files::FolderSink),
    Parquet(table::ImageSpill),
    Dummy,
}

/// One successful sample, as the sinks take it.
pub struct Sample<'a> {
    /// Its key.
    pub key: &'a str,
    /// Its row in the shard.
    pub row: usize,
    /// The image extension (`jpg`, `png`, `webp`).
    pub ext: &'a str,
    /// The encoded image.
    pub image: &'a [u8],
    /// The caption (`KEY.txt`).
    pub txt: &'a str,
    /// The metadata record (`KEY.json`).
    pub json: &'a str,
}

impl Sink {
    fn create(format: OutputFormat, dir: &Path, id: u64, rows: usize) -> Result<Sink> {
        Ok(match format {
            OutputFormat::Webdataset => Sink::Webdataset(webdataset::TarSink::create(dir, id)?),
            OutputFormat::Files => Sink::Files(files::FolderSink::create(dir, id)?),
            OutputFormat::Parquet => Sink::Parquet(table::ImageSpill::create(dir, id, rows)?),
            OutputFormat::Dummy => Sink::Dummy,
            OutputFormat::Tfrecord => anyhow::bail!("{}", unsupported_tfrecord()),
        })
    }

    fn add(&mut self, s: &Sample) -> Result<()> {
        match self {
            Sink::Webdataset(t) => t.add(s),
            Sink::Files(f) => f.add(s),
            Sink::Parquet(p) => p.add(s.row, s.image),
            Sink::Dummy => Ok(()),
        }
    }

    /// Moves the samples into place (after the table is written: the spill feeds it).
    fn commit(self) -> Result<()> {
        match self {
            Sink::Webdataset(t) => t.commit(),
            Sink::Files(f) => f.commit(),
            Sink::Parquet(_) | Sink::Dummy => Ok(()),
        }
    }
}

/// Why `--output_format tfrecord` is refused.
pub fn unsupported_tfrecord() -> &'static str {
    "--output_format tfrecord is not supported: img2dataset writes it with TensorFlow's \
     TFRecordWriter and tf.train.Example protobufs (it needs tensorflow and tensorflow_io), \
     which tic-rs cannot check a writer against, and no tic-rs stage reads it; use webdataset \
     (what tic-reshard and DataComp's tools read), files or parquet"
}

/// Writes one shard as its rows complete (samples in completion order, the table in row order).
pub struct ShardWriter {
    dir: PathBuf,
    id: u64,
    ext: &'static str,
    rows: RecordBatch,
    rows_per_shard: usize,
    sink: Sink,
    outcomes: Vec<Option<RowOutcome>>,
    status_dict: Map<String, Value>,
    start: f64,
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl ShardWriter {
    /// Starts shard `id` of `rows` (columns as `metadata::read_rows` gives them) in `dir`,
    /// written as `format` with images of extension `ext`.
    pub fn create(
        dir: &Path,
        id: u64,
        rows: RecordBatch,
        rows_per_shard: usize,
        format: OutputFormat,
        ext: &'static str,
    ) -> Result<Self> {
        Ok(ShardWriter {
            dir: dir.to_path_buf(),
            id,
            ext,
            sink: Sink::create(format, dir, id, rows.num_rows())?,
            outcomes: vec![None; rows.num_rows()],
            rows,
            rows_per_shard,
            status_dict: Map::new(),
            start: now(),
        })
    }

    /// The row's metadata record (`meta` in img2dataset's downloader), in its key order.
    fn meta(&self, row: usize, o: &RowOutcome) -> Map<String, Value> {
        let mut m = Map::new();
        let schema = self.rows.schema();
        for (i, f) in schema.fields().iter().enumerate() {
            m.insert(
                f.name().clone(),
                column_value(self.rows.column(i).as_ref(), row),
            );
        }
        let size = |k: usize| o.sizes.map_or(Value::Null, |s| json!(s[k]));
        m.insert(
            "key".into(),
            json!(sample_key(self.id, row, self.rows_per_shard)),
        );
        m.insert("status".into(), json!(o.status.as_str()));
        m.insert("error_message".into(), json!(o.error_message));
        for (k, name) in SIZE_FIELDS.into_iter().enumerate() {
            m.insert(name.into(), size(k));
        }
        m.insert("exif".into(), json!(o.exif));
        m.insert("sha256".into(), json!(o.sha256));
        m
    }

    /// Records row `row`'s outcome; a success goes to the format's sink now.
    pub fn add(&mut self, row: usize, mut o: RowOutcome) -> Result<()> {
        let counted = match o.status {
            Status::Success => Status::Success.as_str().to_string(),
            _ => o.error_message.clone().unwrap_or_default(),
        };
        let n = self
            .status_dict
            .get(&counted)
            .and_then(Value::as_u64)
            .unwrap_or(0);
        self.status_dict.insert(counted, json!(n + 1));
        if let Some(img) = o.image.take() {
            let key = sample_key(self.id, row, self.rows_per_shard);
            let json = pyjson::to_string_indent4(&self.meta(row, &o));
            let caption = self.rows.schema().index_of("caption").ok();
            let txt = caption
                .and_then(|c| crate::metadata::string_at(self.rows.column(c).as_ref(), row))
                .unwrap_or_default();
            let sample = Sample {
                key: &key,
                row,
                ext: self.ext,
                image: &img,
                txt: &txt,
                json: &json,
            };
            self.sink.add(&sample).with_context(|| {
                format!("writing shard {:08} in {}", self.id, self.dir.display())
            })?;
        }
        self.outcomes[row] = Some(o);
        Ok(())
    }

    /// Writes the table, renames the samples into place, then writes the stats file.
    /// Returns the stats.
    pub fn finish(self) -> Result<Value> {
        let outcomes: Vec<RowOutcome> = self
            .outcomes
            .iter()
            .enumerate()
            .map(|(i, o)| {
                o.clone()
                    .with_context(|| format!("shard {}: row {i} has no outcome", self.id))
            })
            .collect::<Result<_>>()?;
        let table = table_file(&self.dir, self.id);
        let keys = |i: usize| sample_key(self.id, i, self.rows_per_shard);
        let mut sink = self.sink;
        if !matches!(sink, Sink::Dummy) {
            let images = match &mut sink {
                Sink::Parquet(spill) => Some((self.ext, spill)),
                _ => None,
            };
            table::write(&table, &self.rows, &outcomes, &keys, images)?;
        }
        sink.commit()?;
        let count = |s: Status| outcomes.iter().filter(|o| o.status == s).count();
        let end = now();
        let v = json!({
            "count": outcomes.len(),
            "successes": count(Status::Success),
            "failed_to_download": count(Status::FailedToDownload),
            "failed_to_resize": count(Status::FailedToResize),
            "duration": end - self.start,
            "start_time": self.start,
            "end_time": end,
            "status_dict": Value::Object(self.status_dict),
        });
        let stats = stats_file(&self.dir, self.id);
        tic_shards::atomic::write_file(&stats, pyjson::to_string_indent4(&v).as_bytes())?;
        Ok(v)
    }
}

/// A metadata cell as JSON (strings, the nested box lists as floats, nulls).
fn column_value(col: &dyn arrow_array::Array, row: usize) -> Value {
    match col.data_type() {
        DataType::List(_) | DataType::LargeList(_) => match crate::metadata::boxes_at(col, row) {
            Some(b) => Value::Array(b.iter().map(|b| json!(b.to_vec())).collect()),
            None => Value::Null,
        },
        _ => crate::metadata::string_at(col, row).map_or(Value::Null, Value::String),
    }
}

/// A finished shard's stats file, read back.
pub fn read_stats(dir: &Path, id: u64) -> Result<Value> {
    let p = stats_file(dir, id);
    let data = fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_slice(&data).with_context(|| format!("parsing {}", p.display()))
}

/// Whether shard `id`, written as `format`, is finished and whole: a stats file whose `count`
/// is the shard's rows, and (per format) a table with that many rows and as many samples as the
/// stats' `successes`: the tar's (scanned clean), the folder's (each with its three files), or
/// the table's non-null images. Anything else is redone.
pub fn shard_is_complete(
    dir: &Path,
    id: u64,
    expected_rows: usize,
    format: OutputFormat,
    ext: &str,
) -> bool {
    let check = || -> Result<bool> {
        let v = read_stats(dir, id)?;
        let count = v.get("count").and_then(Value::as_u64).unwrap_or(u64::MAX);
        let ok = v
            .get("successes")
            .and_then(Value::as_u64)
            .unwrap_or(u64::MAX);
        if count != expected_rows as u64 {
            return Ok(false);
        }
        let table = table_file(dir, id);
        let samples = match format {
            OutputFormat::Dummy => return Ok(true),
            OutputFormat::Tfrecord => return Ok(false),
            OutputFormat::Webdataset => webdataset::count_samples(dir, id)?,
            OutputFormat::Files => files::count_samples(dir, id, ext)?,
            OutputFormat::Parquet => table::count_images(&table, ext)?,
        };
        Ok(table::num_rows(&table)? == count && samples == Some(ok))
    };
    check().unwrap_or(false)
}

/// Finds a sample's image by key (in a tar, a folder, …).
type ImageLookup = dyn FnMut(&str) -> Result<Vec<u8>>;

/// Reads back the outcomes of finished shard `id` (its table's status columns, each success's
/// image from the tar, the folder or the table's image column), so `--retry_failed` can
/// rewrite the shard keeping every row it does not refetch. Rows in row order; an unreadable
/// file or a success without its image is an error naming the file and key. `dummy` keeps no
/// per-row record: an error.
pub fn read_outcomes(
    dir: &Path,
    id: u64,
    rows_per_shard: usize,
    format: OutputFormat,
    ext: &str,
) -> Result<Vec<RowOutcome>> {
    let table = table_file(dir, id);
    let with_images = format == OutputFormat::Parquet;
    let mut out = table::read(&table, with_images.then_some(ext))?;
    let mut images: Box<ImageLookup> = match format {
        OutputFormat::Webdataset => Box::new(webdataset::images(dir, id, ext)?),
        OutputFormat::Files => Box::new(files::images(dir, id, ext)),
        OutputFormat::Parquet => {
            let table = table.clone();
            Box::new(move |key: &str| {
                anyhow::bail!("{}: success {key} has no image", table.display())
            })
        }
        OutputFormat::Dummy | OutputFormat::Tfrecord => {
            anyhow::bail!("shard {id:08}: --output_format {format:?} keeps no per-row record")
        }
    };
    for (row, o) in out.iter_mut().enumerate() {
        if o.status == Status::Success && o.image.is_none() {
            o.image = Some(images(&sample_key(id, row, rows_per_shard))?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for st in Status::ALL {
            assert_eq!(Status::parse(st.as_str()), Some(st));
        }
        assert_eq!(Status::parse("Success"), None);
    }

    #[test]
    fn keys_as_img2dataset() {
        assert_eq!(sample_key(0, 0, 10000), "000000000000");
        assert_eq!(sample_key(12, 345, 10000), "000000120345");
        assert_eq!(sample_key(3, 7, 100), "0000000307");
        assert_eq!(sample_key(3, 7, 5), "000000037");
    }
}
