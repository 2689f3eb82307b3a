//! The layout of DataComp's `hf_cache` folder: where Hugging Face `datasets` keeps
//! `nlphuji/flickr_1k_test_image_text_retrieval`, `nlphuji/mscoco_2014_5k_test_image_text_retrieval`
//! and `nlphuji/winogavil` (folder and file names, both cache layouts), the sets' columns and
//! Arrow schema, `dataset_info.json` — and a writer of both layouts ([`write_build`]).
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
//! `dataset_info.json` beside its Arrow files (written last). The layouts also differ inside:
//! 2.8 spells a list feature `Sequence` and names Arrow list items `element`, the current
//! `datasets` spells it `List` and names them `item` ([`CacheLayout`]). [`write_build`] writes
//! either as `datasets` does: the schema (field names, nullability, list items, metadata) is the
//! one of the committed fixtures that the real `datasets` 2.8.0 and 5.2.0 wrote
//! (`crates/tic-eval/tests/fixtures/hf`), and the real `datasets` reads the builds back
//! (`crates/tic-shards/tests/hf_cache_datasets.rs`).
//!
//! Files: this one names the sets, folders and files; `schema` defines the columns, features
//! and Arrow schema and builds record batches; `write` writes build folders.

mod schema;
mod write;

pub use schema::*;
pub use write::*;

use std::path::{Path, PathBuf};

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
/// The config folder of the current layout (`nlphuji___NAME/default`).
pub const DEFAULT_CONFIG: &str = "default";

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

/// Which `datasets` cache layout a build folder follows (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheLayout {
    /// `datasets` 2.x, DataComp's pinned 2.8: `nlphuji___parquet/nlphuji--NAME-<config
    /// hash>/0.0.0/<module hash>/parquet-test.arrow`, `Sequence` features, list items `element`.
    Datasets28,
    /// Current `datasets` (checked with 5.2): `nlphuji___NAME/default/0.0.0/<hub
    /// revision>/NAME-test[-0000i-of-0000n].arrow`, `List` features, list items `item`.
    Current,
}

impl CacheLayout {
    /// The Arrow file prefix of a build folder's files: `parquet` (2.x) or the dataset name.
    pub fn file_prefix(self, set: HfSet) -> &'static str {
        match self {
            Self::Datasets28 => PARQUET_BUILDER,
            Self::Current => set.dataset_name(),
        }
    }

    /// The name `datasets` gives an Arrow list's item field.
    pub fn list_item(self) -> &'static str {
        match self {
            Self::Datasets28 => "element",
            Self::Current => "item",
        }
    }

    /// How `dataset_info.json` spells a list feature's `_type`.
    pub fn list_feature(self) -> &'static str {
        match self {
            Self::Datasets28 => "Sequence",
            Self::Current => "List",
        }
    }

    /// Whether the layout can shard a split over several Arrow files (2.8 writes one).
    pub fn shards_splits(self) -> bool {
        self == Self::Current
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

/// The 2.8 build folder of `set` under `cache` with config hash `config_hash` (16 hex digits):
/// `nlphuji___parquet/nlphuji--NAME-<config_hash>/0.0.0/<PARQUET_MODULE_HASH_2_8>`.
pub fn v28_build_dir(cache: &Path, set: HfSet, config_hash: &str) -> PathBuf {
    parquet_builder_dir(cache)
        .join(format!("{}-{config_hash}", parquet_config_name(set)))
        .join(VERSION_DIR)
        .join(PARQUET_MODULE_HASH_2_8)
}

/// The current layout's build folder of `set` under `cache` at hub revision `revision` (40 hex
/// digits): `nlphuji___NAME/default/0.0.0/<revision>`.
pub fn current_build_dir(cache: &Path, set: HfSet, revision: &str) -> PathBuf {
    dataset_dir(cache, set)
        .join(DEFAULT_CONFIG)
        .join(VERSION_DIR)
        .join(revision)
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
        assert_eq!(
            CacheLayout::Datasets28.file_prefix(HfSet::Mscoco),
            "parquet"
        );
        assert_eq!(
            current_build_dir(Path::new("c"), HfSet::Winogavil, "ab"),
            Path::new("c/nlphuji___winogavil/default/0.0.0/ab")
        );
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
}
