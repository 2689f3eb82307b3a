//! What img2dataset 1.40's `WebDatasetSampleWriter` and `write_stats` leave per shard, and the
//! completion protocol that makes a kill at any moment safe:
//!
//! - `{id:08d}.tar`: per successful row `KEY.jpg`, `KEY.json` (the row's metadata as
//!   `json.dumps(meta, indent=4)`), `KEY.txt` (the caption), in webdataset's sorted member order;
//!   keys `{id * 10^oom + row:0(oom+8)d}` with `oom = ceil(log10(rows per shard))`.
//! - `{id:08d}.parquet`: every input row (in row order) with `key, status, error_message, width,
//!   height, original_width, original_height, exif, sha256`.
//! - `{id:08d}_stats.json`: `count, successes, failed_to_download, failed_to_resize, duration,
//!   start_time, end_time, status_dict`, written last: it marks the shard finished (img2dataset's
//!   incremental mode treats a shard with a stats file as done). Tar and parquet are written under
//!   temporary names and renamed first, so a shard without its stats file is redone from scratch.

use anyhow::{Context, Result};
use arrow_array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use serde_json::{json, Map, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tic_shards::atomic::AtomicFile;
use tic_shards::pyjson;
use tic_shards::wds::TarSampleWriter;

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
    /// img2dataset's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::FailedToDownload => "failed_to_download",
            Status::FailedToResize => "failed_to_resize",
        }
    }
}

/// The outcome of one row.
#[derive(Clone, Debug)]
pub struct RowOutcome {
    /// Its status.
    pub status: Status,
    /// The error (img2dataset's message), `None` on success.
    pub error_message: Option<String>,
    /// Output and decoded sizes (success only).
    pub sizes: Option<[u32; 4]>,
    /// EXIF as a JSON string (success only).
    pub exif: Option<String>,
    /// SHA-256 of the downloaded bytes (success only).
    pub sha256: Option<String>,
    /// The encoded image (success only).
    pub image: Option<Vec<u8>>,
}

/// File names of shard `id`.
pub fn shard_files(dir: &Path, id: u64) -> [PathBuf; 3] {
    [
        dir.join(format!("{id:08}.tar")),
        dir.join(format!("{id:08}.parquet")),
        dir.join(format!("{id:08}_stats.json")),
    ]
}

/// img2dataset's `compute_key`.
pub fn sample_key(shard: u64, row: usize, rows_per_shard: usize) -> String {
    let oom = (rows_per_shard as f64).log10().ceil() as u32;
    let width = oom as usize + 8;
    format!("{:0width$}", shard * 10u64.pow(oom) + row as u64)
}

/// Writes one shard as its rows complete (tar in completion order, parquet in row order).
pub struct ShardWriter {
    dir: PathBuf,
    id: u64,
    ext: &'static str,
    rows: RecordBatch,
    rows_per_shard: usize,
    tar: TarSampleWriter<AtomicFile>,
    outcomes: Vec<Option<RowOutcome>>,
    status_dict: Map<String, Value>,
    start: f64,
    mtime: u64,
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl ShardWriter {
    /// Starts shard `id` of `rows` (columns as `metadata::read_rows` gives them) in `dir`.
    pub fn create(
        dir: &Path,
        id: u64,
        rows: RecordBatch,
        rows_per_shard: usize,
        ext: &'static str,
    ) -> Result<Self> {
        let [tar, ..] = shard_files(dir, id);
        let file =
            AtomicFile::create(&tar).with_context(|| format!("creating {}", tar.display()))?;
        let start = now();
        Ok(ShardWriter {
            dir: dir.to_path_buf(),
            id,
            ext,
            outcomes: vec![None; rows.num_rows()],
            rows,
            rows_per_shard,
            tar: TarSampleWriter::new(file),
            status_dict: Map::new(),
            start,
            mtime: start as u64,
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
        m.insert("width".into(), size(0));
        m.insert("height".into(), size(1));
        m.insert("original_width".into(), size(2));
        m.insert("original_height".into(), size(3));
        m.insert("exif".into(), json!(o.exif));
        m.insert("sha256".into(), json!(o.sha256));
        m
    }

    /// Records row `row`'s outcome; a success goes into the tar now.
    pub fn add(&mut self, row: usize, mut o: RowOutcome) -> Result<()> {
        let counted = match o.status {
            Status::Success => "success".to_string(),
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
            let meta = pyjson::to_string_indent4(&self.meta(row, &o));
            let caption = self.rows.schema().index_of("caption").ok();
            let txt = caption
                .and_then(|c| crate::metadata::string_at(self.rows.column(c).as_ref(), row))
                .unwrap_or_default();
            let mut members: [(&str, &[u8], u64); 3] = [
                (self.ext, &img, self.mtime),
                ("txt", txt.as_bytes(), self.mtime),
                ("json", meta.as_bytes(), self.mtime),
            ];
            self.tar
                .append_sample(&key, &mut members)
                .with_context(|| {
                    format!("writing shard {:08}.tar in {}", self.id, self.dir.display())
                })?;
        }
        self.outcomes[row] = Some(o);
        Ok(())
    }

    /// Writes the parquet, renames the tar and parquet into place, then the stats file.
    /// Returns the stats.
    pub fn finish(self) -> Result<Value> {
        let [tar, parquet, stats] = shard_files(&self.dir, self.id);
        let outcomes: Vec<RowOutcome> = self
            .outcomes
            .iter()
            .enumerate()
            .map(|(i, o)| {
                o.clone()
                    .with_context(|| format!("shard {}: row {i} has no outcome", self.id))
            })
            .collect::<Result<_>>()?;
        write_parquet(
            &parquet,
            &self.rows,
            &outcomes,
            self.id,
            self.rows_per_shard,
        )?;
        let file = self
            .tar
            .finish()
            .with_context(|| format!("writing {}", tar.display()))?;
        file.commit()
            .with_context(|| format!("writing {}", tar.display()))?;
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

fn write_parquet(
    path: &Path,
    rows: &RecordBatch,
    outcomes: &[RowOutcome],
    id: u64,
    per_shard: usize,
) -> Result<()> {
    let strings = |f: &dyn Fn(usize, &RowOutcome) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(
            outcomes
                .iter()
                .enumerate()
                .map(|(i, o)| f(i, o))
                .collect::<Vec<_>>(),
        ))
    };
    let ints = |k: usize| -> ArrayRef {
        Arc::new(Int32Array::from(
            outcomes
                .iter()
                .map(|o| o.sizes.map(|s| s[k] as i32))
                .collect::<Vec<_>>(),
        ))
    };
    let mut fields: Vec<Field> = rows
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut cols: Vec<ArrayRef> = rows.columns().to_vec();
    let added: [(&str, ArrayRef); 9] = [
        ("key", strings(&|i, _| Some(sample_key(id, i, per_shard)))),
        (
            "status",
            strings(&|_, o| Some(o.status.as_str().to_string())),
        ),
        ("error_message", strings(&|_, o| o.error_message.clone())),
        ("width", ints(0)),
        ("height", ints(1)),
        ("original_width", ints(2)),
        ("original_height", ints(3)),
        ("exif", strings(&|_, o| o.exif.clone())),
        ("sha256", strings(&|_, o| o.sha256.clone())),
    ];
    for (name, col) in added {
        fields.push(Field::new(name, col.data_type().clone(), true));
        cols.push(col);
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?;
    let mut file =
        AtomicFile::create(path).with_context(|| format!("creating {}", path.display()))?;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let ctx = || format!("writing {}", path.display());
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut file, batch.schema(), Some(props))
        .with_context(ctx)?;
    w.write(&batch).with_context(ctx)?;
    w.close().with_context(ctx)?;
    file.commit().with_context(ctx)?;
    Ok(())
}

/// Whether shard `id` is finished and whole: a stats file whose `count` equals the parquet's
/// rows and whose `successes` equals the tar's samples. Anything else is redone.
pub fn shard_is_complete(dir: &Path, id: u64, expected_rows: usize) -> bool {
    let [tar, parquet, stats] = shard_files(dir, id);
    let check = || -> Result<bool> {
        let v: Value = serde_json::from_slice(&fs::read(&stats)?)?;
        let count = v.get("count").and_then(Value::as_u64).unwrap_or(u64::MAX);
        let ok = v
            .get("successes")
            .and_then(Value::as_u64)
            .unwrap_or(u64::MAX);
        let pq = parquet::file::reader::SerializedFileReader::new(fs::File::open(&parquet)?)?;
        let rows = parquet::file::reader::FileReader::metadata(&pq)
            .file_metadata()
            .num_rows() as u64;
        let data = fs::read(&tar)?;
        let scan = tic_shards::wds::scan_shard(&data, &tar.display().to_string());
        Ok(count == expected_rows as u64
            && rows == count
            && scan.samples.len() as u64 == ok
            && scan.errors.is_empty())
    };
    check().unwrap_or(false)
}

/// Reads back the outcomes of finished shard `id` (its parquet's status columns, each success's
/// image from its tar), so `--retry_failed` can rewrite the shard keeping every row it does not
/// refetch. Rows in row order; an unreadable file or a success missing from the tar is an error
/// naming the file and key.
pub fn read_outcomes(
    dir: &Path,
    id: u64,
    rows_per_shard: usize,
    ext: &str,
) -> Result<Vec<RowOutcome>> {
    use arrow_array::cast::AsArray;
    use arrow_array::Array;
    let [tar, parquet, _] = shard_files(dir, id);
    let ctx = || format!("reading {}", parquet.display());
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        fs::File::open(&parquet).with_context(ctx)?,
    )
    .with_context(ctx)?
    .build()
    .with_context(ctx)?;
    let data = fs::read(&tar).with_context(|| format!("reading {}", tar.display()))?;
    let scan = tic_shards::wds::scan_shard(&data, &tar.display().to_string());
    let images: std::collections::HashMap<&str, &[u8]> = scan
        .samples
        .iter()
        .filter_map(|s| {
            let m = s.member(ext)?;
            Some((s.key.as_str(), tic_shards::wds::member_bytes(&data, m)))
        })
        .collect();
    let mut out = Vec::new();
    for b in reader {
        let b = b.with_context(ctx)?;
        let col = |n: &str| -> Result<ArrayRef> {
            let i = b
                .schema()
                .index_of(n)
                .with_context(|| format!("{}: no column {n}", parquet.display()))?;
            Ok(b.column(i).clone())
        };
        let (st, err, exif, sha) = (
            col("status")?,
            col("error_message")?,
            col("exif")?,
            col("sha256")?,
        );
        let sizes = ["width", "height", "original_width", "original_height"].map(col);
        let sizes = sizes.into_iter().collect::<Result<Vec<_>>>()?;
        let s = |a: &ArrayRef, i: usize| crate::metadata::string_at(a.as_ref(), i);
        for i in 0..b.num_rows() {
            let row = out.len();
            let status = match s(&st, i).as_deref() {
                Some("success") => Status::Success,
                Some("failed_to_resize") => Status::FailedToResize,
                _ => Status::FailedToDownload,
            };
            let dims = sizes
                .iter()
                .map(|a| {
                    a.as_primitive_opt::<arrow_array::types::Int32Type>()
                        .filter(|a| !a.is_null(i))
                        .map(|a| a.value(i) as u32)
                })
                .collect::<Option<Vec<u32>>>();
            let image = if status == Status::Success {
                let key = sample_key(id, row, rows_per_shard);
                let img = images.get(key.as_str()).with_context(|| {
                    format!(
                        "{}: sample {key} is a success in the parquet but not in the tar",
                        tar.display()
                    )
                })?;
                Some(img.to_vec())
            } else {
                None
            };
            out.push(RowOutcome {
                status,
                error_message: s(&err, i),
                sizes: dims.map(|d| [d[0], d[1], d[2], d[3]]),
                exif: s(&exif, i),
                sha256: s(&sha, i),
                image,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_as_img2dataset() {
        assert_eq!(sample_key(0, 0, 10000), "000000000000");
        assert_eq!(sample_key(12, 345, 10000), "000000120345");
        assert_eq!(sample_key(3, 7, 100), "0000000307");
        assert_eq!(sample_key(3, 7, 5), "000000037");
    }
}
