//! The shard table `{id:08d}.parquet` that img2dataset's `BufferedParquetWriter` writes for every
//! format but `dummy`: the input columns, then `key` (string), `status` (string),
//! `error_message` (string), `width`, `height`, `original_width`, `original_height` (int32),
//! `exif`, `sha256` (string), one row per input row; with `--output_format parquet`
//! (`ParquetSampleWriter`) a last binary column named after the encoding (`jpg`) holding each
//! success's image (null otherwise). Row groups of 100 rows, snappy, as img2dataset's buffer of
//! 100 and pyarrow's default; rows here in row order (img2dataset: completion order).
//!
//! With images, the shard's images are spilled to a temporary file as they arrive
//! ([`ImageSpill`]) and read back 100 rows at a time, so a shard's images are never all in
//! memory at once.

use super::{RowOutcome, Status, SIZE_FIELDS};
use anyhow::{Context, Result};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BinaryArray, Int32Array, RecordBatch, StringArray};
use arrow_schema::{Field, Schema};
use std::fs::{self, File};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tic_shards::atomic::{AtomicFile, TEMP_PREFIX};

/// img2dataset's `BufferedParquetWriter` buffer: one row group per 100 rows.
const ROW_GROUP: usize = 100;

/// A shard's images in a temporary file (`.tic-tmp-{id:08d}.images`), by row.
pub struct ImageSpill {
    id: u64,
    path: PathBuf,
    file: BufWriter<File>,
    at: Vec<Option<(u64, usize)>>,
    len: u64,
}

impl ImageSpill {
    /// Starts the spill of shard `id` (`rows` rows) in `dir`.
    pub fn create(dir: &Path, id: u64, rows: usize) -> Result<Self> {
        let path = dir.join(format!("{TEMP_PREFIX}{id:08}.images"));
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(ImageSpill {
            id,
            path,
            file: BufWriter::with_capacity(1 << 20, file),
            at: vec![None; rows],
            len: 0,
        })
    }

    /// Stores row `row`'s image.
    pub fn add(&mut self, row: usize, image: &[u8]) -> Result<()> {
        self.file
            .write_all(image)
            .with_context(|| format!("writing {}", self.what()))?;
        self.at[row] = Some((self.len, image.len()));
        self.len += image.len() as u64;
        Ok(())
    }

    /// The spill file and whose images it holds, for errors.
    fn what(&self) -> String {
        format!(
            "{} (the images of {:08}.parquet)",
            self.path.display(),
            self.id
        )
    }

    /// The images of rows `range`, `None` where a row has none.
    fn read(&mut self, range: std::ops::Range<usize>) -> Result<Vec<Option<Vec<u8>>>> {
        let what = self.what();
        self.file
            .flush()
            .with_context(|| format!("writing {what}"))?;
        let ctx = || format!("reading {what}");
        let mut f = File::open(&self.path).with_context(ctx)?;
        let mut out = Vec::with_capacity(range.len());
        for at in &self.at[range] {
            out.push(match *at {
                Some((off, n)) => {
                    let mut b = vec![0; n];
                    f.seek(SeekFrom::Start(off)).with_context(ctx)?;
                    f.read_exact(&mut b).with_context(ctx)?;
                    Some(b)
                }
                None => None,
            });
        }
        Ok(out)
    }
}

impl Drop for ImageSpill {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Rows `range` of the table: the input columns, the status columns and (with `images`) the
/// image column.
fn batch(
    rows: &RecordBatch,
    outcomes: &[RowOutcome],
    keys: &dyn Fn(usize) -> String,
    range: std::ops::Range<usize>,
    images: Option<(&str, Vec<Option<Vec<u8>>>)>,
) -> Result<RecordBatch> {
    let part = &outcomes[range.clone()];
    let strings = |f: &dyn Fn(&RowOutcome) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(part.iter().map(f).collect::<Vec<_>>()))
    };
    let ints = |k: usize| -> ArrayRef {
        let v: Vec<Option<i32>> = part.iter().map(|o| o.sizes.map(|s| s[k] as i32)).collect();
        Arc::new(Int32Array::from(v))
    };
    let key_col: ArrayRef = Arc::new(StringArray::from(
        range.clone().map(keys).collect::<Vec<_>>(),
    ));
    let mut fields: Vec<Field> = rows
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut cols: Vec<ArrayRef> = rows.slice(range.start, range.len()).columns().to_vec();
    let mut added: Vec<(&str, ArrayRef)> = vec![
        ("key", key_col),
        ("status", strings(&|o| Some(o.status.as_str().to_string()))),
        ("error_message", strings(&|o| o.error_message.clone())),
    ];
    added.extend(
        SIZE_FIELDS
            .into_iter()
            .enumerate()
            .map(|(k, n)| (n, ints(k))),
    );
    added.extend([
        ("exif", strings(&|o| o.exif.clone())),
        ("sha256", strings(&|o| o.sha256.clone())),
    ]);
    if let Some((ext, imgs)) = images {
        added.push((ext, Arc::new(BinaryArray::from_iter(imgs))));
    }
    for (name, col) in added {
        fields.push(Field::new(name, col.data_type().clone(), true));
        cols.push(col);
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
}

/// Writes the table of a shard (atomically): `rows` with their `outcomes` and `keys`, and with
/// `images` (`--output_format parquet`) the image column `ext` read from the spill.
pub fn write(
    path: &Path,
    rows: &RecordBatch,
    outcomes: &[RowOutcome],
    keys: &dyn Fn(usize) -> String,
    mut images: Option<(&str, &mut ImageSpill)>,
) -> Result<()> {
    let ctx = || format!("writing {}", path.display());
    let file = AtomicFile::create(path).with_context(ctx)?;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP))
        .build();
    let n = outcomes.len();
    let mut batches = (0..n.max(1)).step_by(ROW_GROUP).map(|start| {
        let range = start..(start + ROW_GROUP).min(n);
        let imgs = match images.as_mut() {
            Some((ext, spill)) => Some((*ext, spill.read(range.clone())?)),
            None => None,
        };
        batch(rows, outcomes, keys, range, imgs).with_context(ctx)
    });
    let first = batches.next().context("no rows")??;
    let mut w = parquet::arrow::ArrowWriter::try_new(file, first.schema(), Some(props))
        .with_context(ctx)?;
    w.write(&first).with_context(ctx)?;
    for b in batches {
        w.write(&b?).with_context(ctx)?;
    }
    w.into_inner()
        .with_context(ctx)?
        .commit()
        .with_context(ctx)?;
    Ok(())
}

/// The table's rows (from its footer).
pub fn num_rows(path: &Path) -> Result<u64> {
    let pq = parquet::file::reader::SerializedFileReader::new(File::open(path)?)?;
    Ok(parquet::file::reader::FileReader::metadata(&pq)
        .file_metadata()
        .num_rows() as u64)
}

/// The non-null values of the image column `ext` (from the footer's statistics), or `None`
/// when the table has no such column or no null counts.
pub fn count_images(path: &Path, ext: &str) -> Result<Option<u64>> {
    let pq = parquet::file::reader::SerializedFileReader::new(File::open(path)?)?;
    let meta = parquet::file::reader::FileReader::metadata(&pq);
    let mut n = 0;
    for rg in meta.row_groups() {
        let Some(c) = rg
            .columns()
            .iter()
            .find(|c| c.column_path().string() == ext)
        else {
            return Ok(None);
        };
        let Some(nulls) = c.statistics().and_then(|s| s.null_count_opt()) else {
            return Ok(None);
        };
        n += rg.num_rows() as u64 - nulls;
    }
    Ok(Some(n))
}

/// Reads a table back as outcomes in row order (images from the column `image_ext` if given,
/// else none); the file is named in every error.
pub fn read(path: &Path, image_ext: Option<&str>) -> Result<Vec<RowOutcome>> {
    let ctx = || format!("reading {}", path.display());
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        File::open(path).with_context(ctx)?,
    )
    .with_context(ctx)?
    .build()
    .with_context(ctx)?;
    let mut out = Vec::new();
    for b in reader {
        let b = b.with_context(ctx)?;
        let col = |n: &str| -> Result<ArrayRef> {
            let i = b
                .schema()
                .index_of(n)
                .with_context(|| format!("{}: no column {n}", path.display()))?;
            Ok(b.column(i).clone())
        };
        let [st, err, exif, sha] = ["status", "error_message", "exif", "sha256"].map(col);
        let (st, err, exif, sha) = (st?, err?, exif?, sha?);
        let sizes = SIZE_FIELDS.map(col);
        let sizes = sizes.into_iter().collect::<Result<Vec<_>>>()?;
        let images = image_ext.map(col).transpose()?;
        let s = |a: &ArrayRef, i: usize| crate::metadata::string_at(a.as_ref(), i);
        for i in 0..b.num_rows() {
            let status = s(&st, i)
                .as_deref()
                .and_then(Status::parse)
                .unwrap_or(Status::FailedToDownload);
            let dims = sizes
                .iter()
                .map(|a| {
                    a.as_primitive_opt::<arrow_array::types::Int32Type>()
                        .filter(|a| !a.is_null(i))
                        .map(|a| a.value(i) as u32)
                })
                .collect::<Option<Vec<u32>>>();
            let image = images
                .as_ref()
                .and_then(|a| a.as_binary_opt::<i32>())
                .filter(|a| !a.is_null(i))
                .map(|a| a.value(i).to_vec());
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
