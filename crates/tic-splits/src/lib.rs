//! tic-splits: the dataset-creation scripts of TiC-CLIP (`apple/ml-tic-clip/dataset_creation`),
//! one binary per script, each a drop-in with the same flags and output files.
//!
//! - [`evaluids`]: `tic-eval-uids` (`generate_eval_uids.py`): eval uid pickles → sorted `u8,u8` npy.
//! - [`classes`]: `tic-datacompnet-classes` (`generate_datacompnet_uid2classid.py`).
//! - [`tasklist`]: `tic-tasklist` (`generate_tasklist.py`): the TiC eval tasks as DataComp YAML.
//! - [`taskkey`] + [`taskspec`]: the task-key grammar (`tic/{dataset}/{family}/{timescale}/{time}`)
//!   and the `tasklist.yml` entry schema, shared with `tic-eval` (which reads the lists) and
//!   `tic-analysis` (which groups results by key).
//! - [`wordnet`] + [`restricted`]: `tic-restricted-classes` (`imagenet_restricted_classes.py`).
//! - [`captions`] (with `tic_shards::ftfy`), [`split`], [`yfcc`], [`redcaps`], [`tsv`]: `tic-yfcc-splits`
//!   and `tic-redcaps-splits` (the two `create_splits.py`).
//! - [`synth`]: small synthetic YFCC CSVs / RedCaps annotation files (`tic-synth-captions`).
//! - [`imagenet`]: the 1000 ImageNet classes shipped in `crates/tic-shards/data/imagenet/`.
pub mod captions;
pub mod classes;
pub mod evaluids;
pub mod imagenet;
pub mod redcaps;
pub mod restricted;
pub mod split;
pub mod synth;
pub mod taskkey;
pub mod tasklist;
pub mod taskspec;
pub mod tsv;
pub mod wordnet;
pub mod yfcc;
