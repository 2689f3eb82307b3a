//! The layout of DataComp's `hf_cache` folder: where Hugging Face `datasets` keeps
//! `nlphuji/flickr_1k_test_image_text_retrieval`, `nlphuji/mscoco_2014_5k_test_image_text_retrieval`
//! and `nlphuji/winogavil` (folder and file names, both cache layouts), the sets' columns and
//! Arrow schema, `dataset_info.json` — and the writer of the layout DataComp's pinned
//! `datasets` 2.8 leaves.
//!
//! Defined here, in the shard layer, because two crates meet in it: tic-eval reads the cache
//! (`tic_eval::hf_cache`, both layouts) and tic-synth writes synthetic stand-ins of the sets
//! (`synth::hf_sets`) for `make demo`; tic-shards cannot depend on tic-eval.
//!
//! The two layouts (`datasets` names a build folder `…/<version>/<hash>`):
//! * `datasets` 2.x, DataComp's pinned 2.8.0 (a script-less hub repository is built by the
//!   packaged `parquet` builder):
//!   `hf_cache/nlphuji___parquet/nlphuji--NAME-<config hash>/0.0.0/<module hash>/parquet-test.arrow`;
//! * current `datasets` (checked with 5.2):
//!   `hf_cache/nlphuji___NAME/default/0.0.0/<commit>/NAME-test.arrow`, or sharded
//!   `NAME-test-00000-of-00002.arrow`, …
//!
//! Each Arrow file is an IPC *stream* (record batches one after another, uncompressed) whose
//! schema carries the `datasets` features as `huggingface` metadata; a finished build has a
//! `dataset_info.json` beside its Arrow files (written last). [`write_v28_build`] writes the
//! 2.8 layout as `datasets` 2.8 does: the schema (field names, nullability, `element` list
//! items, metadata) is the one of the committed fixtures that the real `datasets` 2.8 wrote
//! (`crates/tic-eval/tests/fixtures/hf`), and the real `datasets` reads it back
//! (`crates/tic-shards/tests/hf_cache_datasets.rs`).

use crate::atomic::AtomicFile;
use anyhow::{bail, Context, Result};
use arrow_array::builder::{
    BinaryBuilder, Int64Builder, ListBuilder, StringBuilder, StructBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{DataType, Field, Fields, Schema};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The cache folder under a DataComp data folder (`os.path.join(data_root, "hf_cache")`).
pub const HF_CACHE_DIR: &str = "hf_cache";
/// The hub namespace of DataComp's three sets.
pub const HUB_NAMESPACE: &str = "nlphuji";
/// The split DataComp loads.
pub const SPLIT: &str = "test";
/// The file a finished build leaves beside its Arrow files.
pub const DATASET_INFO_FILE: &str = "dataset_info.json";
/// The packaged builder `datasets` 2.x uses for a script-less hub repository: the name of its
/// cache folder (`nlphuji___parquet`) and of its Arrow files (`parquet-test.arrow`).
pub const PARQUET_BUILDER: &str = "parquet";
/// The version folder of a script-less set (`0.0.0`).
pub const VERSION_DIR: &str = "0.0.0";
/// The module-hash folder of `datasets` 2.8's packaged `parquet` builder (as in the fixtures
/// the real `datasets` 2.8.0 wrote).
pub const PARQUET_MODULE_HASH_2_8: &str =
    "2a3b91fbd88a2c90d1dbbb32b460cf621d31bd5b05b934492fdef7d8d6f236ec";
/// The schema-metadata key under which `datasets` stores its features.
pub const HF_METADATA_KEY: &str = "huggingface";
/// The name `datasets` (from parquet) gives a list's item field.
pub const LIST_ITEM: &str = "element";

/// The sets' column names (the real sets' features).
pub mod columns {
    /// Retrieval: the image (`Image()`).
    pub const IMAGE: &str = "image";
    /// Retrieval: the captions (list of strings).
    pub const CAPTION: &str = "caption";
    /// Retrieval: the captions' sentence ids (list of strings).
    pub const SENTIDS: &str = "sentids";
    /// Retrieval: the Karpathy split (`test`).
    pub const SPLIT: &str = "split";
    /// Retrieval: the image id.
    pub const IMG_ID: &str = "img_id";
    /// Retrieval: the image file name.
    pub const FILENAME: &str = "filename";
    /// WinoGAViL: the candidates' names (list of strings).
    pub const CANDIDATES: &str = "candidates";
    /// WinoGAViL: the cue word.
    pub const CUE: &str = "cue";
    /// WinoGAViL: the true associations, names among the candidates (list of strings).
    pub const ASSOCIATIONS: &str = "associations";
    /// WinoGAViL: the candidates' images (list of `Image()`).
    pub const CANDIDATE_IMAGES: &str = "candidate_images";
    /// WinoGAViL: the number of associations.
    pub const NUM_ASSOCIATIONS: &str = "num_associations";
    /// WinoGAViL: the number of candidates.
    pub const NUM_CANDIDATES: &str = "num_candidates";
    /// WinoGAViL: the instance id.
    pub const ID: &str = "ID";
    /// An `Image()` struct's encoded bytes.
    pub const IMAGE_BYTES: &str = "bytes";
    /// An `Image()` struct's file path (read when `bytes` is null).
    pub const IMAGE_PATH: &str = "path";
}

/// One of DataComp's Hugging Face evaluation sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HfSet {
    /// `retrieval/flickr_1k_test_image_text_retrieval` (Flickr30k 1k test).
    Flickr,
    /// `retrieval/mscoco_2014_5k_test_image_text_retrieval` (MSCOCO 5k test).
    Mscoco,
    /// `misc/winogavil`.
    Winogavil,
}

impl HfSet {
    /// The three sets.
    pub const ALL: [HfSet; 3] = [Self::Flickr, Self::Mscoco, Self::Winogavil];

    /// DataComp's task key (`tasklist.yml`).
    pub fn key(self) -> &'static str {
        match self {
            Self::Flickr => "retrieval/flickr_1k_test_image_text_retrieval",
            Self::Mscoco => "retrieval/mscoco_2014_5k_test_image_text_retrieval",
            Self::Winogavil => "misc/winogavil",
        }
    }

    /// The set a DataComp task key is read from, if it is one of the three.
    pub fn for_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.key() == key)
    }

    /// The hub dataset name (`nlphuji/NAME`): the key without its `retrieval/` / `misc/`.
    pub fn dataset_name(self) -> &'static str {
        let key = self.key();
        &key[key.find('/').map_or(0, |i| i + 1)..]
    }

    /// Whether the set is an image-text retrieval set (else WinoGAViL).
    pub fn is_retrieval(self) -> bool {
        self != Self::Winogavil
    }
}

/// A DataComp data folder's `hf_cache` folder.
pub fn cache_root(data_dir: &Path) -> PathBuf {
    data_dir.join(HF_CACHE_DIR)
}

/// The current layout's dataset folder: `cache/nlphuji___NAME`.
pub fn dataset_dir(cache: &Path, set: HfSet) -> PathBuf {
    cache.join(format!("{HUB_NAMESPACE}___{}", set.dataset_name()))
}

/// The 2.x parquet builder's folder: `cache/nlphuji___parquet`.
pub fn parquet_builder_dir(cache: &Path) -> PathBuf {
    cache.join(format!("{HUB_NAMESPACE}___{PARQUET_BUILDER}"))
}

/// The 2.x config name of a set (`nlphuji--NAME`), also `dataset_info.json`'s `config_name`.
pub fn parquet_config_name(set: HfSet) -> String {
    format!("{HUB_NAMESPACE}--{}", set.dataset_name())
}

/// Whether `folder` (a file name under [`parquet_builder_dir`]) is a config folder of `set`:
/// `nlphuji--NAME` or `nlphuji--NAME-<hex hash>`.
pub fn is_parquet_config_dir(folder: &str, set: HfSet) -> bool {
    let config = parquet_config_name(set);
    folder == config
        || folder
            .strip_prefix(&format!("{config}-"))
            .is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The Arrow file prefix of a build folder's files: `parquet` (2.x) or the dataset name.
pub fn file_prefix(set: HfSet, v28: bool) -> &'static str {
    if v28 {
        PARQUET_BUILDER
    } else {
        set.dataset_name()
    }
}

/// An unsharded split's Arrow file: `PREFIX-test.arrow`.
pub fn split_file(prefix: &str) -> String {
    format!("{prefix}-{SPLIT}.arrow")
}

/// Shard `i` of `n` of a split: `PREFIX-test-IIIII-of-NNNNN.arrow`.
pub fn shard_file(prefix: &str, i: usize, n: usize) -> String {
    format!("{prefix}-{SPLIT}-{i:05}-of-{n:05}.arrow")
}

/// `PREFIX-test-IIIII-of-NNNNN.arrow` → `(i, n)` (the inverse of [`shard_file`]).
pub fn shard_index(file_name: &str, prefix: &str) -> Option<(usize, usize)> {
    let rest = file_name
        .strip_prefix(&format!("{prefix}-{SPLIT}-"))?
        .strip_suffix(".arrow")?;
    let (i, n) = rest.split_once("-of-")?;
    let digits = |s: &str| s.len() == 5 && s.chars().all(|c| c.is_ascii_digit());
    (digits(i) && digits(n)).then(|| Some((i.parse().ok()?, n.parse().ok()?)))?
}

/// A `datasets` feature, as the sets use them.
#[derive(Debug, Clone, Copy)]
enum Feature {
    /// `Value("string")`.
    Str,
    /// `Value("int64")`.
    Int,
    /// `Image()`.
    Image,
    /// `Sequence(Value("string"))`.
    Strings,
    /// `Sequence(Image())`.
    Images,
}

/// The sets' columns and features, in column order (the real sets').
fn features(set: HfSet) -> Vec<(&'static str, Feature)> {
    use columns::*;
    if set.is_retrieval() {
        vec![
            (IMAGE, Feature::Image),
            (CAPTION, Feature::Strings),
            (SENTIDS, Feature::Strings),
            (SPLIT, Feature::Str),
            (IMG_ID, Feature::Str),
            (FILENAME, Feature::Str),
        ]
    } else {
        vec![
            (CANDIDATES, Feature::Strings),
            (CUE, Feature::Str),
            (ASSOCIATIONS, Feature::Strings),
            (CANDIDATE_IMAGES, Feature::Images),
            (NUM_ASSOCIATIONS, Feature::Int),
            (NUM_CANDIDATES, Feature::Int),
            (ID, Feature::Int),
        ]
    }
}

/// `Image()`'s Arrow type: `struct<bytes: binary, path: string>`.
pub fn image_fields() -> Fields {
    Fields::from(vec![
        Field::new(columns::IMAGE_BYTES, DataType::Binary, true),
        Field::new(columns::IMAGE_PATH, DataType::Utf8, true),
    ])
}

fn arrow_type(f: Feature) -> DataType {
    let list = |t: DataType| DataType::List(Arc::new(Field::new(LIST_ITEM, t, true)));
    match f {
        Feature::Str => DataType::Utf8,
        Feature::Int => DataType::Int64,
        Feature::Image => DataType::Struct(image_fields()),
        Feature::Strings => list(DataType::Utf8),
        Feature::Images => list(DataType::Struct(image_fields())),
    }
}

fn feature_json(f: Feature) -> Value {
    let value = |t: &str| json!({"dtype": t, "_type": "Value"});
    let seq = |v: Value| json!({"feature": v, "_type": "Sequence"});
    match f {
        Feature::Str => value("string"),
        Feature::Int => value("int64"),
        Feature::Image => json!({"_type": "Image"}),
        Feature::Strings => seq(value("string")),
        Feature::Images => seq(json!({"_type": "Image"})),
    }
}

/// The set's `datasets` features as `dataset_info.json` spells them (column order kept).
pub fn features_json(set: HfSet) -> Value {
    Value::Object(
        features(set)
            .into_iter()
            .map(|(n, f)| (n.to_string(), feature_json(f)))
            .collect(),
    )
}

/// The Arrow schema of the set's files, with the `huggingface` features metadata.
pub fn schema(set: HfSet) -> Schema {
    let fields: Vec<Field> = features(set)
        .into_iter()
        .map(|(n, f)| Field::new(n, arrow_type(f), true))
        .collect();
    let meta = crate::pyjson::to_string(&json!({"info": {"features": features_json(set)}}));
    Schema::new_with_metadata(fields, HashMap::from([(HF_METADATA_KEY.to_string(), meta)]))
}

/// An encoded image and its file path, an `Image()` cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageCell {
    /// The encoded image.
    pub bytes: Vec<u8>,
    /// Its file name, if any.
    pub path: Option<String>,
}

/// One row of a retrieval set (Flickr / MSCOCO columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrievalRecord {
    /// `image`.
    pub image: ImageCell,
    /// `caption`, in order.
    pub captions: Vec<String>,
    /// `sentids`, one per caption.
    pub sentids: Vec<String>,
    /// `img_id`.
    pub img_id: String,
    /// `filename`.
    pub filename: String,
}

/// One WinoGAViL instance (its columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WinogavilRecord {
    /// `candidates`.
    pub candidates: Vec<String>,
    /// `cue`.
    pub cue: String,
    /// `associations` (names among the candidates).
    pub associations: Vec<String>,
    /// `candidate_images`, in the order of `candidates`.
    pub candidate_images: Vec<ImageCell>,
    /// `ID`.
    pub id: i64,
}

/// The rows of one set.
#[derive(Debug, Clone)]
pub enum SetRows {
    /// Flickr / MSCOCO rows.
    Retrieval(Vec<RetrievalRecord>),
    /// WinoGAViL instances.
    Winogavil(Vec<WinogavilRecord>),
}

impl SetRows {
    /// The number of rows.
    pub fn len(&self) -> usize {
        match self {
            Self::Retrieval(r) => r.len(),
            Self::Winogavil(r) => r.len(),
        }
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn image_builder() -> StructBuilder {
    StructBuilder::new(
        image_fields(),
        vec![
            Box::new(BinaryBuilder::new()),
            Box::new(StringBuilder::new()),
        ],
    )
}

fn append_image(b: &mut StructBuilder, cell: &ImageCell) {
    let bytes = b.field_builder::<BinaryBuilder>(0).expect("bytes builder");
    bytes.append_value(&cell.bytes);
    let path = b.field_builder::<StringBuilder>(1).expect("path builder");
    path.append_option(cell.path.as_deref());
    b.append(true);
}

fn string_list() -> ListBuilder<StringBuilder> {
    ListBuilder::new(StringBuilder::new()).with_field(Field::new(LIST_ITEM, DataType::Utf8, true))
}

fn append_strings(b: &mut ListBuilder<StringBuilder>, items: &[String]) {
    for s in items {
        b.values().append_value(s);
    }
    b.append(true);
}

/// The retrieval rows as columns in [`schema`]'s order.
fn retrieval_columns(rows: &[RetrievalRecord]) -> Vec<ArrayRef> {
    let (mut image, mut caption, mut sentids) = (image_builder(), string_list(), string_list());
    let (mut split, mut img_id, mut filename) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    for r in rows {
        append_image(&mut image, &r.image);
        append_strings(&mut caption, &r.captions);
        append_strings(&mut sentids, &r.sentids);
        split.append_value(SPLIT);
        img_id.append_value(&r.img_id);
        filename.append_value(&r.filename);
    }
    vec![
        Arc::new(image.finish()),
        Arc::new(caption.finish()),
        Arc::new(sentids.finish()),
        Arc::new(split.finish()),
        Arc::new(img_id.finish()),
        Arc::new(filename.finish()),
    ]
}

/// The WinoGAViL rows as columns in [`schema`]'s order.
fn winogavil_columns(rows: &[WinogavilRecord]) -> Vec<ArrayRef> {
    let (mut candidates, mut cue, mut associations) =
        (string_list(), StringBuilder::new(), string_list());
    let item = Field::new(LIST_ITEM, DataType::Struct(image_fields()), true);
    let mut images = ListBuilder::new(image_builder()).with_field(item);
    let (mut num_assoc, mut num_cand, mut id) = (
        Int64Builder::new(),
        Int64Builder::new(),
        Int64Builder::new(),
    );
    for r in rows {
        append_strings(&mut candidates, &r.candidates);
        cue.append_value(&r.cue);
        append_strings(&mut associations, &r.associations);
        for cell in &r.candidate_images {
            append_image(images.values(), cell);
        }
        images.append(true);
        num_assoc.append_value(r.associations.len() as i64);
        num_cand.append_value(r.candidates.len() as i64);
        id.append_value(r.id);
    }
    vec![
        Arc::new(candidates.finish()),
        Arc::new(cue.finish()),
        Arc::new(associations.finish()),
        Arc::new(images.finish()),
        Arc::new(num_assoc.finish()),
        Arc::new(num_cand.finish()),
        Arc::new(id.finish()),
    ]
}

/// The rows of `set` as one record batch of [`schema`]; an error if the rows are not `set`'s
/// kind, or a WinoGAViL instance's images do not match its candidates.
pub fn record_batch(set: HfSet, rows: &SetRows) -> Result<RecordBatch> {
    let columns = match (set.is_retrieval(), rows) {
        (true, SetRows::Retrieval(r)) => retrieval_columns(r),
        (false, SetRows::Winogavil(r)) => {
            if let Some(bad) = r
                .iter()
                .find(|w| w.candidate_images.len() != w.candidates.len())
            {
                bail!(
                    "{}: instance {}: {} candidates but {} images",
                    set.dataset_name(),
                    bad.id,
                    bad.candidates.len(),
                    bad.candidate_images.len()
                );
            }
            winogavil_columns(r)
        }
        _ => bail!("{}: rows of the wrong kind", set.dataset_name()),
    };
    RecordBatch::try_new(Arc::new(schema(set)), columns)
        .with_context(|| format!("{}: building the record batch", set.dataset_name()))
}

/// Writes `batch` as an Arrow IPC stream to `path`, atomically.
fn write_stream(path: &Path, batch: &RecordBatch) -> Result<u64> {
    let mut f = AtomicFile::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = StreamWriter::try_new(&mut f, &batch.schema())
        .with_context(|| format!("writing {}", path.display()))?;
    w.write(batch)
        .and_then(|()| w.finish())
        .with_context(|| format!("writing {}", path.display()))?;
    drop(w);
    f.flush()?;
    f.commit()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(std::fs::metadata(path)?.len())
}

/// `dataset_info.json` of a 2.8 parquet build of `set` (`num_bytes`: the Arrow file's size).
pub fn dataset_info_v28(set: HfSet, num_examples: usize, num_bytes: u64) -> Value {
    json!({
        "description": "", "citation": "", "homepage": "", "license": "",
        "features": features_json(set),
        "builder_name": PARQUET_BUILDER,
        "config_name": parquet_config_name(set),
        "version": {"version_str": VERSION_DIR, "major": 0, "minor": 0, "patch": 0},
        "splits": {SPLIT: {"name": SPLIT, "num_bytes": num_bytes, "num_examples": num_examples,
                           "dataset_name": PARQUET_BUILDER}},
        "download_checksums": {}, "download_size": 0,
        "dataset_size": num_bytes, "size_in_bytes": num_bytes,
    })
}

/// The 2.8 build folder of `set` under `cache` with config hash `config_hash` (16 hex digits):
/// `nlphuji___parquet/nlphuji--NAME-<config_hash>/0.0.0/<PARQUET_MODULE_HASH_2_8>`.
pub fn v28_build_dir(cache: &Path, set: HfSet, config_hash: &str) -> PathBuf {
    parquet_builder_dir(cache)
        .join(format!("{}-{config_hash}", parquet_config_name(set)))
        .join(VERSION_DIR)
        .join(PARQUET_MODULE_HASH_2_8)
}

/// Writes `rows` of `set` under `cache` as `datasets` 2.8 caches it ([`v28_build_dir`]:
/// `parquet-test.arrow`, then `dataset_info.json`, each atomically; the info file last, as
/// `datasets` finishes a build). Returns the build folder.
pub fn write_v28_build(
    cache: &Path,
    set: HfSet,
    config_hash: &str,
    rows: &SetRows,
) -> Result<PathBuf> {
    if rows.is_empty() {
        bail!("{}: no rows to write", set.dataset_name());
    }
    let dir = v28_build_dir(cache, set, config_hash);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let batch = record_batch(set, rows)?;
    let bytes = write_stream(&dir.join(split_file(PARQUET_BUILDER)), &batch)?;
    let info = dataset_info_v28(set, rows.len(), bytes);
    let info = crate::pyjson::to_string(&info);
    crate::atomic::write_atomic(dir.join(DATASET_INFO_FILE), info.as_bytes())
        .with_context(|| format!("writing {}", dir.join(DATASET_INFO_FILE).display()))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_names_and_files() {
        assert_eq!(HfSet::for_key("misc/winogavil"), Some(HfSet::Winogavil));
        assert_eq!(
            HfSet::for_key("retrieval/flickr_1k_test_image_text_retrieval")
                .map(HfSet::dataset_name),
            Some("flickr_1k_test_image_text_retrieval")
        );
        assert_eq!(HfSet::for_key("retrieval/flickr30k"), None);
        assert!(HfSet::Mscoco.is_retrieval() && !HfSet::Winogavil.is_retrieval());
        assert_eq!(shard_index(&shard_file("x", 1, 2), "x"), Some((1, 2)));
        assert_eq!(shard_index("x-test.arrow", "x"), None);
        assert_eq!(shard_index("x-train-00001-of-00002.arrow", "x"), None);
        assert_eq!(shard_index("x-test-1-of-2.arrow", "x"), None);
        assert!(is_parquet_config_dir(
            "nlphuji--winogavil-434b0b628c0d70b4",
            HfSet::Winogavil
        ));
        assert!(!is_parquet_config_dir(
            "nlphuji--winogavil-x",
            HfSet::Winogavil
        ));
        assert!(!is_parquet_config_dir(
            "nlphuji--winogavil-434b",
            HfSet::Flickr
        ));
    }

    #[test]
    fn wrong_rows_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let e = write_v28_build(d.path(), HfSet::Flickr, "00", &SetRows::Winogavil(vec![]));
        assert!(e.unwrap_err().to_string().contains("no rows"));
        let w = WinogavilRecord {
            candidates: vec!["a".into(), "b".into()],
            cue: "c".into(),
            associations: vec!["a".into()],
            candidate_images: vec![],
            id: 7,
        };
        let e = record_batch(HfSet::Winogavil, &SetRows::Winogavil(vec![w.clone()]));
        assert!(e.unwrap_err().to_string().contains("instance 7"));
        let e = record_batch(HfSet::Flickr, &SetRows::Winogavil(vec![w]));
        assert!(e.unwrap_err().to_string().contains("wrong kind"));
    }
}
