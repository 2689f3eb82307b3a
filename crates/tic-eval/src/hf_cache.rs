//! DataComp's three Hugging Face evaluation sets, read from the `hf_cache` folder that
//! DataComp's `download_evalsets.py` leaves under its data folder, as it is: no Python, no
//! conversion step, no network.
//!
//! DataComp loads `retrieval/flickr_1k_test_image_text_retrieval`,
//! `retrieval/mscoco_2014_5k_test_image_text_retrieval` and `misc/winogavil` with
//! `datasets.load_dataset("nlphuji/NAME", split="test", cache_dir=DATA_DIR/hf_cache)`; `datasets`
//! keeps each set there as Arrow IPC *streams* (one record batch after another, uncompressed),
//! in one of two layouts depending on its version ([`find_cached`]); both layouts — folder and
//! file names, columns, the Arrow schema — are defined in `tic_shards::hf_cache_layout`, which
//! tic-synth also writes with (a script-based set has its own config and version folders in the
//! same places as the current layout's `default/0.0.0`).
//!
//! A build folder counts only when it holds `dataset_info.json` (written last, after the Arrow
//! files; unfinished builds live in `*.incomplete` folders, which are skipped). When several
//! builds are cached (two layouts, two hub revisions), the one whose `dataset_info.json` is
//! newest is read — the download `datasets` made last — and the others are named in a warning.
//! The row count is checked against `dataset_info.json`'s `splits.test.num_examples`.
//!
//! Columns read (the real sets' features; others are ignored): Flickr / MSCOCO `image`
//! (`Image()`: struct<bytes: binary, path: string>) and `caption` (list<string>); WinoGAViL
//! `cue` (string), `candidates` and `associations` (list<string>) and `candidate_images`
//! (list of `Image()` structs). An image whose `bytes` are null is read from its `path`. Rows
//! come in file order, shard after shard: `datasets`' row order. Every error names the file
//! (and the row and column).

use anyhow::{bail, Context, Result};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_ipc::reader::StreamReader;
use std::io::BufReader;
use std::path::{Path, PathBuf};
pub use tic_shards::hf_cache_layout::{
    cache_root, CacheLayout, HfSet, DATASET_INFO_FILE, HF_CACHE_DIR, HUB_NAMESPACE, SPLIT,
};
use tic_shards::hf_cache_layout::{
    columns, dataset_dir, is_parquet_config_dir, parquet_builder_dir, shard_index, split_file,
};

/// A cached build of a set's test split: its Arrow files in row order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedSet {
    /// The build folder (`…/<version>/<hash>`).
    pub dir: PathBuf,
    /// `NAME-test.arrow`, or the shards `NAME-test-0000i-of-0000n.arrow` in order.
    pub files: Vec<PathBuf>,
    /// `splits.test.num_examples` of `dataset_info.json`, when it says.
    pub num_examples: Option<u64>,
}

/// The sub-folders of `dir` (none if it is not a folder), sorted, without unfinished builds.
fn sub_dirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && !p.to_string_lossy().ends_with(".incomplete"))
        .collect();
    out.sort();
    out
}

/// The build folders that may hold `set`: `(folder, Arrow file prefix)`, both layouts.
fn build_dirs(cache: &Path, set: HfSet) -> Vec<(PathBuf, &'static str)> {
    let mut out = Vec::new();
    // Current layout (and script-based sets): nlphuji___NAME/<config>/<version>/<hash>.
    for config in sub_dirs(&dataset_dir(cache, set)) {
        for version in sub_dirs(&config) {
            out.extend(
                sub_dirs(&version)
                    .into_iter()
                    .map(|h| (h, CacheLayout::Current.file_prefix(set))),
            );
        }
    }
    // datasets 2.x parquet builder: nlphuji___parquet/nlphuji--NAME-<hash>/<version>/<hash>.
    for config in sub_dirs(&parquet_builder_dir(cache)) {
        let folder = config.file_name().unwrap_or_default().to_string_lossy();
        if is_parquet_config_dir(&folder, set) {
            for version in sub_dirs(&config) {
                out.extend(
                    sub_dirs(&version)
                        .into_iter()
                        .map(|h| (h, CacheLayout::Datasets28.file_prefix(set))),
                );
            }
        }
    }
    out
}

/// The test split's Arrow files in `dir`, in row order; `Ok(None)` if it has none.
fn test_files(dir: &Path, prefix: &str) -> Result<Option<Vec<PathBuf>>> {
    let single = dir.join(split_file(prefix));
    if single.is_file() {
        return Ok(Some(vec![single]));
    }
    let mut shards: Vec<(usize, usize, PathBuf)> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .flatten()
        .filter_map(|e| {
            let (i, n) = shard_index(&e.file_name().to_string_lossy(), prefix)?;
            Some((i, n, e.path()))
        })
        .collect();
    if shards.is_empty() {
        return Ok(None);
    }
    shards.sort();
    let n = shards[0].1;
    let complete =
        shards.len() == n && shards.iter().enumerate().all(|(k, s)| s.0 == k && s.1 == n);
    if !complete {
        bail!(
            "{}: incomplete sharded test split: expected {prefix}-{SPLIT}-00000-of-{n:05} … \
             {:05}-of-{n:05}, found {}",
            dir.display(),
            n.saturating_sub(1),
            shards
                .iter()
                .map(|s| s
                    .2
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(Some(shards.into_iter().map(|s| s.2).collect()))
}

/// `splits.test.num_examples` of a `dataset_info.json`; an unreadable file is an error.
fn num_examples(info: &Path) -> Result<Option<u64>> {
    let text =
        std::fs::read_to_string(info).with_context(|| format!("reading {}", info.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", info.display()))?;
    Ok(v.pointer(&format!("/splits/{SPLIT}/num_examples"))
        .and_then(|n| n.as_u64()))
}

/// Finds the cached test split of `nlphuji/NAME` under `data_dir/hf_cache` (both layouts,
/// see the module docs). Errors name the folder looked in, and the patterns looked for.
pub fn find_cached(data_dir: &Path, set: HfSet) -> Result<CachedSet> {
    let cache = cache_root(data_dir);
    let name = set.dataset_name();
    if !cache.is_dir() {
        bail!(
            "DataComp's Hugging Face cache {} does not exist (DataComp's download_evalsets.py \
             writes it: `nlphuji/{name}` is read from there)",
            cache.display()
        );
    }
    let mut found = Vec::new();
    for (dir, prefix) in build_dirs(&cache, set) {
        let info = dir.join(DATASET_INFO_FILE);
        let Some(files) = test_files(&dir, prefix)? else {
            continue;
        };
        if !info.is_file() {
            tracing::warn!(
                "{}: no {DATASET_INFO_FILE} (an unfinished build?), skipped",
                dir.display()
            );
            continue;
        }
        let mtime = std::fs::metadata(&info).and_then(|m| m.modified()).ok();
        found.push((
            mtime,
            CachedSet {
                num_examples: num_examples(&info)?,
                dir,
                files,
            },
        ));
    }
    if found.is_empty() {
        bail!(
            "{}: no cached test split of nlphuji/{name} (looked for \
             {HUB_NAMESPACE}___{name}/*/*/*/{name}-{SPLIT}[-NNNNN-of-NNNNN].arrow and \
             {HUB_NAMESPACE}___parquet/{HUB_NAMESPACE}--{name}-*/*/*/parquet-{SPLIT}.arrow, each \
             beside a {DATASET_INFO_FILE})",
            cache.display()
        );
    }
    // Newest dataset_info.json last; ties by path, so the choice is deterministic.
    found.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.dir.cmp(&b.1.dir)));
    let (_, chosen) = found.pop().expect("not empty");
    if !found.is_empty() {
        tracing::warn!(
            "nlphuji/{name}: {} cached builds; reading the newest, {} (not {})",
            found.len() + 1,
            chosen.dir.display(),
            found
                .iter()
                .map(|f| f.1.dir.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(chosen)
}

/// A column of a record batch, or an error naming the file and the column.
fn column<'a>(batch: &'a RecordBatch, name: &str, file: &Path) -> Result<&'a ArrayRef> {
    batch.column_by_name(name).with_context(|| {
        format!(
            "{}: no column {name:?} (columns: {})",
            file.display(),
            batch
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// The strings of a string array (either offset width); nulls are errors naming `what`.
fn strings(arr: &dyn Array, what: &dyn Fn() -> String) -> Result<Vec<String>> {
    let get = |i: usize| -> Result<String> {
        if arr.is_null(i) {
            bail!("{}: null at item {i}", what());
        }
        Ok(
            match (arr.as_string_opt::<i32>(), arr.as_string_opt::<i64>()) {
                (Some(a), _) => a.value(i).to_string(),
                (_, Some(a)) => a.value(i).to_string(),
                _ => bail!("{}: expected strings, found {}", what(), arr.data_type()),
            },
        )
    };
    (0..arr.len()).map(get).collect()
}

/// Row `row` of a list array (either offset width) as the array of its items.
fn list_items(arr: &dyn Array, row: usize, what: &dyn Fn() -> String) -> Result<ArrayRef> {
    if arr.is_null(row) {
        bail!("{}: null list", what());
    }
    match (arr.as_list_opt::<i32>(), arr.as_list_opt::<i64>()) {
        (Some(l), _) => Ok(l.value(row)),
        (_, Some(l)) => Ok(l.value(row)),
        _ => bail!("{}: expected a list, found {}", what(), arr.data_type()),
    }
}

/// The encoded images of an array of `Image()` structs (`bytes`, else the file at `path`).
fn images(arr: &dyn Array, what: &dyn Fn() -> String) -> Result<Vec<Vec<u8>>> {
    let s = arr.as_struct_opt().with_context(|| {
        format!(
            "{}: expected Image() structs, found {}",
            what(),
            arr.data_type()
        )
    })?;
    let bytes = s
        .column_by_name(columns::IMAGE_BYTES)
        .with_context(|| format!("{}: an Image() struct without `bytes`", what()))?;
    let paths = s.column_by_name(columns::IMAGE_PATH);
    (0..s.len())
        .map(|i| {
            if s.is_null(i) {
                bail!("{}: null image at item {i}", what());
            }
            if !bytes.is_null(i) {
                return match (bytes.as_binary_opt::<i32>(), bytes.as_binary_opt::<i64>()) {
                    (Some(b), _) => Ok(b.value(i).to_vec()),
                    (_, Some(b)) => Ok(b.value(i).to_vec()),
                    _ => bail!("{}: `bytes` is {}, not binary", what(), bytes.data_type()),
                };
            }
            let path = paths
                .filter(|p| !p.is_null(i))
                .map(|p| strings(&p.slice(i, 1), what))
                .transpose()?
                .and_then(|mut v| v.pop())
                .with_context(|| format!("{}: image {i} has neither bytes nor a path", what()))?;
            std::fs::read(&path).with_context(|| {
                format!(
                    "{}: image {i} has no bytes; reading its path {path}",
                    what()
                )
            })
        })
        .collect()
}

/// Walks the framing of the Arrow IPC stream `file` (each message: a length, flatbuffer
/// metadata, a body whose length the metadata declares) and refuses a message that claims more
/// bytes than the file holds. Arrow's reader allocates each message at its declared size, so a
/// damaged or hostile length would otherwise allocate up to gigabytes before failing.
fn check_framing(file: &Path) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let len = f.metadata()?.len();
    let mut pos = 0u64;
    let mut word = [0u8; 4];
    while pos + 4 <= len {
        f.read_exact(&mut word)?;
        pos += 4;
        if word == [0xff; 4] {
            if pos + 4 > len {
                break;
            }
            f.read_exact(&mut word)?;
            pos += 4;
        }
        let meta_len = i32::from_le_bytes(word);
        if meta_len == 0 {
            break;
        }
        let at = pos;
        let what = |n: i64| {
            format!(
                "{}: byte {at}: a message of {n} bytes in a file of {len} (not an Arrow IPC \
                 stream, or a damaged one)",
                file.display()
            )
        };
        if meta_len < 0 || pos + meta_len as u64 > len {
            bail!(what(i64::from(meta_len)));
        }
        let mut meta = vec![0u8; meta_len as usize];
        f.read_exact(&mut meta)?;
        let body = arrow_ipc::root_as_message(&meta)
            .map(|m| m.bodyLength())
            .map_err(|e| {
                anyhow::anyhow!("{}: byte {pos}: not an Arrow message: {e}", file.display())
            })?;
        pos += meta_len as u64;
        if body < 0 || pos.checked_add(body as u64).is_none_or(|end| end > len) {
            bail!(what(body));
        }
        pos += body as u64;
        f.seek(SeekFrom::Start(pos))?;
    }
    Ok(())
}

/// Runs `f`, turning a panic into an error: arrow-rs' IPC reader panics on some malformed
/// batches (a validity bitmap shorter than the array, found by tic-fuzz's `hf_cache` target)
/// instead of returning its error.
fn unpanic<T>(f: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        anyhow::anyhow!("the Arrow reader failed on it: {msg}")
    })
}

/// Reads every record batch of the Arrow IPC streams `files`, in order, handing each to
/// `visit` with its file and the index of its first row in that file; `visit` returns
/// `Ok(false)` to stop. Errors name the file.
fn for_each_batch(
    files: &[PathBuf],
    visit: &mut dyn FnMut(&RecordBatch, &Path, usize) -> Result<bool>,
) -> Result<usize> {
    let mut total = 0;
    for file in files {
        check_framing(file)?;
        let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
        let not_stream = || {
            format!(
                "{}: not an Arrow IPC stream (as `datasets` writes its cache)",
                file.display()
            )
        };
        let mut reader = unpanic(|| StreamReader::try_new(BufReader::new(f), None))
            .with_context(not_stream)?
            .with_context(not_stream)?;
        let corrupt = || format!("{}: a corrupt record batch", file.display());
        let mut first = 0;
        while let Some(batch) = unpanic(|| reader.next()).with_context(corrupt)? {
            let batch = batch.with_context(corrupt)?;
            if !visit(&batch, file, first)? {
                return Ok(total + first);
            }
            first += batch.num_rows();
        }
        total += first;
    }
    Ok(total)
}

/// Checks the number of rows read against `dataset_info.json`.
fn check_count(set: &CachedSet, rows: usize) -> Result<()> {
    match set.num_examples {
        Some(n) if n != rows as u64 => bail!(
            "{}: {DATASET_INFO_FILE} says the test split has {n} rows, its Arrow files hold {rows}",
            set.dir.display()
        ),
        _ if rows == 0 => bail!("{}: the test split has no rows", set.dir.display()),
        _ => Ok(()),
    }
}

/// Streams the rows of `set`, each parsed by `parse(batch, file, row in batch, origin)`, to
/// `visit` in `datasets`' order until it returns `false`; then checks the row count (if all
/// were read). Returns the number of rows read.
fn for_each_row<R>(
    set: &CachedSet,
    parse: &dyn Fn(&RecordBatch, &Path, usize, String) -> Result<R>,
    visit: &mut dyn FnMut(R) -> bool,
) -> Result<usize> {
    let mut complete = true;
    let rows = for_each_batch(&set.files, &mut |batch, file, first| {
        for r in 0..batch.num_rows() {
            let origin = format!("{}:row {}", file.display(), first + r);
            if !visit(parse(batch, file, r, origin)?) {
                complete = false;
                return Ok(false);
            }
        }
        Ok(true)
    })?;
    if complete {
        check_count(set, rows)?;
    }
    Ok(rows)
}

/// One row of Flickr / MSCOCO: the encoded image and its captions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrievalRow {
    /// `file:row N`, for messages.
    pub origin: String,
    /// The encoded image.
    pub image: Vec<u8>,
    /// The captions, in order.
    pub captions: Vec<String>,
}

/// Streams the rows of a retrieval set to `visit` in `datasets`' order until it returns
/// `false`; then checks the row count (if all were read). Returns the number of rows.
pub fn for_each_retrieval_row(
    set: &CachedSet,
    visit: &mut dyn FnMut(RetrievalRow) -> bool,
) -> Result<usize> {
    let parse = |batch: &RecordBatch, file: &Path, r: usize, origin: String| {
        let what = |c: &str| format!("{origin}: column {c:?}");
        let (image, caption) = (columns::IMAGE, columns::CAPTION);
        let image_col = column(batch, image, file)?;
        let caption_col = column(batch, caption, file)?;
        let image = images(&image_col.slice(r, 1), &|| what(image))?
            .pop()
            .expect("one row");
        let items = list_items(caption_col.as_ref(), r, &|| what(caption))?;
        let captions = strings(items.as_ref(), &|| what(caption))?;
        Ok(RetrievalRow {
            origin,
            image,
            captions,
        })
    };
    for_each_row(set, &parse, visit)
}

/// One WinoGAViL instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WinogavilRow {
    /// `file:row N`, for messages.
    pub origin: String,
    /// The cue word.
    pub cue: String,
    /// The candidates' names, in order.
    pub candidates: Vec<String>,
    /// The true associations (names among the candidates).
    pub associations: Vec<String>,
    /// The candidates' encoded images, in the order of `candidates`.
    pub images: Vec<Vec<u8>>,
}

impl WinogavilRow {
    /// `np.isin(candidates, associations)`: which candidates are true associations.
    pub fn truth(&self) -> Vec<bool> {
        self.candidates
            .iter()
            .map(|c| self.associations.contains(c))
            .collect()
    }
}

/// Streams the WinoGAViL instances to `visit` in `datasets`' order until it returns `false`;
/// then checks the row count (if all were read). Returns the number of rows.
pub fn for_each_winogavil_row(
    set: &CachedSet,
    visit: &mut dyn FnMut(WinogavilRow) -> bool,
) -> Result<usize> {
    let parse = |batch: &RecordBatch, file: &Path, r: usize, origin: String| {
        let what = |c: &str| format!("{origin}: column {c:?}");
        let list = |c: &str| list_items(column(batch, c, file)?.as_ref(), r, &|| what(c));
        use columns::{ASSOCIATIONS, CANDIDATES, CANDIDATE_IMAGES, CUE};
        let cue = column(batch, CUE, file)?;
        let row = WinogavilRow {
            cue: strings(&cue.slice(r, 1), &|| what(CUE))?
                .pop()
                .expect("one row"),
            candidates: strings(list(CANDIDATES)?.as_ref(), &|| what(CANDIDATES))?,
            associations: strings(list(ASSOCIATIONS)?.as_ref(), &|| what(ASSOCIATIONS))?,
            images: images(list(CANDIDATE_IMAGES)?.as_ref(), &|| what(CANDIDATE_IMAGES))?,
            origin: origin.clone(),
        };
        if row.images.len() != row.candidates.len() {
            bail!(
                "{origin}: {} candidates but {} candidate_images",
                row.candidates.len(),
                row.images.len()
            );
        }
        Ok(row)
    };
    for_each_row(set, &parse, visit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_cache_and_missing_set_name_the_path() {
        let d = tempfile::tempdir().unwrap();
        let e = find_cached(d.path(), HfSet::Flickr)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&cache_root(d.path()).display().to_string()),
            "{e}"
        );
        std::fs::create_dir(cache_root(d.path())).unwrap();
        let e = format!("{:#}", find_cached(d.path(), HfSet::Winogavil).unwrap_err());
        assert!(
            e.contains("nlphuji___winogavil") && e.contains(HF_CACHE_DIR),
            "{e}"
        );
    }
}
