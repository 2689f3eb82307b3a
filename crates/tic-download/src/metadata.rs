//! DataComp's metadata: fetching the parquets from the Hugging Face hub (`download_upstream.py`'s
//! `snapshot_download`), and reading them into shards of rows as img2dataset's `Reader` cuts them.
//!
//! Reading follows img2dataset 1.40: the parquet files of the folder in sorted order, columns
//! `url`, `text` (renamed `caption`), `uid` and `face_bboxes` (`save_additional_columns=["uid"]`
//! plus the bbox column), each file cut into shards of `number_sample_per_shard` rows, shard ids
//! continuing over files. With `--subset`, only rows whose uid is listed are kept and the kept
//! rows of all files are cut in order (no file's remainder makes a small shard), so a 2014-only
//! split of medium is a few hundred full shards.

use anyhow::{bail, Context, Result};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tic_shards::Uid;

use crate::args::Scale;
use crate::blur::BBox;

/// The metadata column of the face boxes (DataComp's `bbox_col`).
pub const BBOX_COL: &str = "face_bboxes";

/// Fetches `*.parquet` (and `*.npz` with `npz`) of the scale's hub dataset into `dir`, as
/// `download_upstream.py` does: through a Hugging Face cache in `dir/../hf` (removed after),
/// `HF_ENDPOINT` honoured, xlarge's `part_*/` folders flattened.
pub fn fetch_from_hub(scale: Scale, dir: &Path, npz: bool, progress: bool) -> Result<()> {
    use hf_hub::{api::sync::ApiBuilder, Repo, RepoType};
    let cache = dir.parent().unwrap_or(Path::new(".")).join("hf");
    let api = ApiBuilder::from_env()
        .with_cache_dir(cache.clone())
        .with_progress(progress)
        .build()
        .context("setting up the Hugging Face hub client")?;
    let repo = api.repo(Repo::new(scale.hub_repo().to_string(), RepoType::Dataset));
    let info = repo
        .info()
        .with_context(|| format!("listing the hub dataset {}", scale.hub_repo()))?;
    let nested = scale == Scale::Xlarge;
    let wanted = |name: &str| {
        let ext_ok = name.ends_with(".parquet") || (npz && name.ends_with(".npz"));
        ext_ok && (!nested || name.contains('/'))
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for s in info.siblings.iter().filter(|s| wanted(&s.rfilename)) {
        let src = repo
            .get(&s.rfilename)
            .with_context(|| format!("downloading {} from {}", s.rfilename, scale.hub_repo()))?;
        let base = s.rfilename.rsplit('/').next().unwrap_or(&s.rfilename);
        tic_shards::atomic::copy_file(&src, &dir.join(base))?;
    }
    std::fs::remove_dir_all(&cache).with_context(|| format!("removing {}", cache.display()))?;
    Ok(())
}

/// The parquet files of the metadata folder, sorted (img2dataset's `fs.glob("*.parquet")`).
pub fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading the metadata folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!(
            "No file found at path {} with extension parquet",
            dir.display()
        );
    }
    Ok(files)
}

/// Reads the shard columns of one metadata parquet: `uid`, `face_bboxes` (when `bbox`),
/// `caption` (from `text`), `url`, in img2dataset's `column_list` order. Errors name the file.
pub fn read_rows(path: &Path, bbox: bool) -> Result<RecordBatch> {
    // The parquet decoders assert on some corrupt pages (an RLE bit width over 32, found by
    // tic-fuzz's `download_metadata` target) instead of returning their error.
    std::panic::catch_unwind(|| read_rows_unchecked(path, bbox)).unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        bail!("{}: the parquet reader failed on it: {msg}", path.display())
    })
}

fn read_rows_unchecked(path: &Path, bbox: bool) -> Result<RecordBatch> {
    let ctx = || format!("reading metadata {}", path.display());
    let file = std::fs::File::open(path).with_context(ctx)?;
    let len = file.metadata().with_context(ctx)?.len();
    // The schema from the parquet types alone: the Arrow schema that pyarrow embeds is not
    // needed (strings and lists map the same) and arrow-ipc panics on a corrupt one.
    let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
    let builder =
        ParquetRecordBatchReaderBuilder::try_new_with_options(file, options).with_context(ctx)?;
    check_chunks(path, builder.metadata(), len)?;
    let schema = builder.schema().clone();
    let mut names = vec!["uid"];
    if bbox {
        names.push(BBOX_COL);
    }
    names.extend(["text", "url"]);
    let mut roots = Vec::new();
    for n in &names {
        let i = schema.index_of(n).map_err(|_| {
            anyhow::anyhow!(
                "{}: no column `{n}` (columns: {:?})",
                path.display(),
                schema.fields().iter().map(|f| f.name()).collect::<Vec<_>>()
            )
        })?;
        roots.push(i);
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots.clone());
    let reader = builder
        .with_projection(mask)
        .with_batch_size(65536)
        .build()
        .with_context(ctx)?;
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().with_context(ctx)?;
    let projected = batches.first().map(|b| b.schema()).unwrap_or_else(|| {
        Arc::new(Schema::new(
            roots
                .iter()
                .map(|&i| schema.field(i).clone())
                .collect::<Vec<Field>>(),
        ))
    });
    let all = arrow_select::concat::concat_batches(&projected, &batches).with_context(ctx)?;
    // Reorder to `names` and rename text → caption.
    let mut fields = Vec::new();
    let mut cols: Vec<ArrayRef> = Vec::new();
    for n in &names {
        let i = all.schema().index_of(n).with_context(ctx)?;
        let f = all.schema().field(i).clone();
        let name = if *n == "text" { "caption" } else { *n };
        check_type(path, name, f.data_type())?;
        fields.push(f.with_name(name));
        cols.push(all.column(i).clone());
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).with_context(ctx)
}

/// Every column chunk's byte range lies inside the file: the parquet reader asserts (panics)
/// on negative offsets or sizes in a corrupt footer, so they are refused here first.
fn check_chunks(
    path: &Path,
    meta: &parquet::file::metadata::ParquetMetaData,
    len: u64,
) -> Result<()> {
    for (g, group) in meta.row_groups().iter().enumerate() {
        for (c, col) in group.columns().iter().enumerate() {
            let start = col
                .dictionary_page_offset()
                .unwrap_or(col.data_page_offset());
            let size = col.compressed_size();
            let inside = u64::try_from(start)
                .ok()
                .zip(u64::try_from(size).ok())
                .is_some_and(|(s, n)| s.checked_add(n).is_some_and(|end| end <= len));
            if !inside || col.data_page_offset() < 0 {
                bail!(
                    "{}: row group {g}, column {c}: chunk at byte {start}, {size} bytes, lies \
                     outside the file ({len} bytes): corrupt parquet footer",
                    path.display()
                );
            }
        }
    }
    Ok(())
}

fn check_type(path: &Path, name: &str, t: &DataType) -> Result<()> {
    let ok = match name {
        BBOX_COL => matches!(t, DataType::List(_) | DataType::LargeList(_)),
        _ => matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View),
    };
    if !ok {
        bail!(
            "{}: column `{name}` has type {t}, expected {}",
            path.display(),
            if name == BBOX_COL {
                "a list of boxes"
            } else {
                "string"
            }
        );
    }
    Ok(())
}

/// The string at `row` of a string column (`None` when null).
pub fn string_at(col: &dyn Array, row: usize) -> Option<String> {
    if col.is_null(row) {
        return None;
    }
    Some(match col.data_type() {
        DataType::LargeUtf8 => col.as_string::<i64>().value(row).to_string(),
        DataType::Utf8View => col.as_string_view().value(row).to_string(),
        _ => col.as_string::<i32>().value(row).to_string(),
    })
}

fn floats(a: &dyn Array) -> Vec<f64> {
    match a.data_type() {
        DataType::Float32 => a
            .as_primitive::<arrow_array::types::Float32Type>()
            .values()
            .iter()
            .map(|&v| v as f64)
            .collect(),
        DataType::Float64 => a
            .as_primitive::<arrow_array::types::Float64Type>()
            .values()
            .to_vec(),
        _ => Vec::new(),
    }
}

fn list_items(a: &dyn Array, row: usize) -> Option<ArrayRef> {
    match a.data_type() {
        DataType::List(_) => Some(a.as_list::<i32>().value(row)),
        DataType::LargeList(_) => Some(a.as_list::<i64>().value(row)),
        _ => None,
    }
}

/// The face boxes of `row` (`None` when null), each `[x0, y0, x1, y1]` relative.
pub fn boxes_at(col: &dyn Array, row: usize) -> Option<Vec<BBox>> {
    if col.is_null(row) {
        return None;
    }
    let outer = list_items(col, row)?;
    let mut out = Vec::with_capacity(outer.len());
    for i in 0..outer.len() {
        let inner = list_items(outer.as_ref(), i)
            .map(|a| floats(a.as_ref()))
            .unwrap_or_default();
        if inner.len() >= 4 {
            out.push([inner[0], inner[1], inner[2], inner[3]]);
        }
    }
    Some(out)
}

/// Keeps the rows whose `uid` is in `subset` (sorted); a malformed uid names the file and row.
pub fn filter_subset(batch: &RecordBatch, subset: &[Uid], file: &Path) -> Result<RecordBatch> {
    let col = batch.column(0);
    let mut keep = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let k = match string_at(col.as_ref(), row) {
            Some(s) => {
                let uid = Uid::parse(&s)
                    .with_context(|| format!("{}: row {row}: uid {s:?}", file.display()))?;
                subset.binary_search(&uid).is_ok()
            }
            None => false,
        };
        keep.push(k);
    }
    Ok(arrow_select::filter::filter_record_batch(
        batch,
        &BooleanArray::from(keep),
    )?)
}

/// Reads and merges the `--subset` uid arrays (sorted, unique).
pub fn read_subsets(paths: &[PathBuf]) -> Result<Vec<Uid>> {
    let mut all = Vec::new();
    for p in paths {
        let bytes = std::fs::read(p).with_context(|| format!("reading subset {}", p.display()))?;
        all.extend(tic_shards::npy::read_uids(
            &bytes,
            &p.display().to_string(),
        )?);
    }
    tic_shards::uid::sort_unique(&mut all);
    Ok(all)
}

/// One shard to download: its id and its rows.
pub struct ShardRows {
    /// The shard id (`{id:08d}.tar`).
    pub id: u64,
    /// The rows (columns as [`read_rows`] gives them).
    pub rows: RecordBatch,
}

/// Cuts the metadata into shards, file by file (lazily: one file in memory at a time).
pub struct ShardPlan {
    files: std::vec::IntoIter<PathBuf>,
    bbox: bool,
    subset: Option<Vec<Uid>>,
    per_shard: usize,
    next_id: u64,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
}

impl ShardPlan {
    /// A plan over `files` (sorted), with or without the bbox column and a subset.
    pub fn new(
        files: Vec<PathBuf>,
        bbox: bool,
        subset: Option<Vec<Uid>>,
        per_shard: usize,
    ) -> Self {
        ShardPlan {
            files: files.into_iter(),
            bbox,
            subset,
            per_shard: per_shard.max(1),
            next_id: 0,
            pending: Vec::new(),
            pending_rows: 0,
        }
    }

    fn take_pending(&mut self) -> Result<Option<RecordBatch>> {
        if self.pending.is_empty() {
            return Ok(None);
        }
        let schema = self.pending[0].schema();
        let all = arrow_select::concat::concat_batches(&schema, &self.pending)?;
        self.pending.clear();
        self.pending_rows = 0;
        Ok(Some(all))
    }

    /// The next shards: all shards of the next file (without a subset), or the full shards the
    /// kept rows make so far (with one; the remainder comes after the last file).
    pub fn next_shards(&mut self) -> Result<Option<Vec<ShardRows>>> {
        loop {
            let Some(file) = self.files.next() else {
                let rest = self.take_pending()?;
                return Ok(rest.filter(|b| b.num_rows() > 0).map(|rows| {
                    let id = self.next_id;
                    self.next_id += 1;
                    vec![ShardRows { id, rows }]
                }));
            };
            let rows = read_rows(&file, self.bbox)?;
            let rows = match &self.subset {
                Some(s) => filter_subset(&rows, s, &file)?,
                None => rows,
            };
            self.pending_rows += rows.num_rows();
            self.pending.push(rows);
            if self.subset.is_some() && self.pending_rows < self.per_shard {
                continue;
            }
            let all = self.take_pending()?.expect("pending rows");
            let mut out = Vec::new();
            let mut start = 0;
            while start < all.num_rows() {
                let n = self.per_shard.min(all.num_rows() - start);
                if self.subset.is_some() && n < self.per_shard {
                    self.pending_rows = n;
                    self.pending.push(all.slice(start, n));
                    break;
                }
                out.push(ShardRows {
                    id: self.next_id,
                    rows: all.slice(start, n),
                });
                self.next_id += 1;
                start += n;
            }
            return Ok(Some(out));
        }
    }
}
