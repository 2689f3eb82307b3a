//! tic-shards: the WebDataset shard layer of tic-rs, shared by every other crate.
//!
//! - [`uid`]: 128-bit DataComp uids; [`npy`] and [`pickle`]: the UID files TiC-CLIP publishes.
//! - [`wds`]: tar shards as samples; [`shardfmt`]: `{:08d}.tar`-style names.
//! - [`storage`]: local paths, object-store URLs and [`pipe`] (`pipe:CMD`) shard URLs; [`atomic`]: temp + rename writes;
//!   [`lock`]: one writer per output folder.
//! - [`reshard`]: the TiC resharder (`tic-reshard`); [`pyjson`]: JSON as Python writes it.
//! - [`counts`]: the `_stats.json`/`sizes.json` sample-count files; [`stats`]: `tic-stats` and
//!   `tic-sizes`, which write them; [`evalset_layout`]: the CLIP_benchmark evaluation-set
//!   layout, which [`convert`] writes; [`hf_cache_layout`]: DataComp's Hugging Face cache
//!   (`hf_cache`), which tic-eval reads; [`make_tars`]: CSV + images to shards; [`synth`]: the
//!   synthetic pool.
//! - [`ftfy`]: ftfy's `fix_text` (caption cleaning and the CLIP tokenizer's `basic_clean`);
//!   [`html`]: the HTML character-reference decoder (ftfy's and Python's `html.unescape`).
//! - [`cli`]: logging and progress bars for the binaries.

pub mod atomic;
pub mod cli;
pub mod convert;
pub mod counts;
pub mod evalset_layout;
pub mod ftfy;
pub mod hf_cache_layout;
pub mod html;
pub mod lock;
pub mod make_tars;
pub mod npy;
pub mod pickle;
pub mod pipe;
pub mod pyjson;
pub mod reshard;
#[cfg(feature = "remote")]
#[doc(hidden)]
pub mod s3test;
pub mod shardfmt;
pub mod stats;
pub mod storage;
pub mod store_lock;
pub mod synth;
pub mod uid;
pub mod wds;

pub use uid::Uid;

/// The 1000 ImageNet classes in standard order: WordNet ids (timm), CLIP class names and the
/// 80 zero-shot templates (CLIP_benchmark 1.4.0). See the crate's `data/README.md` for
/// provenance.
pub mod imagenet {
    /// One WordNet id (`nXXXXXXXX`) per line, class id = line number.
    pub const SYNSETS: &str = include_str!("../data/imagenet/synsets.txt");
    /// One class name per line, in class-id order.
    pub const CLASSNAMES: &str = include_str!("../data/imagenet/classnames.txt");
    /// One zero-shot template per line, with a `{c}` placeholder.
    pub const TEMPLATES: &str =
        include_str!("../data/imagenet/zeroshot_classification_templates.txt");

    /// The class names as a vector (index = class id).
    pub fn classnames() -> Vec<&'static str> {
        CLASSNAMES.lines().collect()
    }
    /// The WordNet ids as a vector (index = class id).
    pub fn synsets() -> Vec<&'static str> {
        SYNSETS.lines().collect()
    }
    /// The zero-shot templates.
    pub fn templates() -> Vec<&'static str> {
        TEMPLATES.lines().collect()
    }
}
