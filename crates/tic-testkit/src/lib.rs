//! Test support shared by the tic-rs crates' integration tests (a dev-dependency only).
//!
//! Several crates' tests locate committed fixtures, run the crate's binaries and check their
//! exit status, check every binary's `--help`, list the files a binary wrote and read WebDataset
//! shards back. Each of those lives here once, so that the crates' tests keep only what is
//! their own:
//!
//! - [`fixtures`]: where a crate's committed test fixtures are (`crates/<crate>/tests/fixtures`);
//! - [`process`]: running a binary, asserting success or failure;
//! - [`help`]: the check that every binary's `-h` / `--help` opens with its own job;
//! - [`files`]: the files below a folder;
//! - [`hub_cache`]: Hugging Face hub cache folders (`models--ORG--REPO`) holding given files;
//! - [`shards`]: samples of tar shards, synthetic pools, resharder subsets;
//! - `tensors` (feature `tensors`): how far apart two Candle tensors are;
//! - `model` (feature `model`): a tiny random CLIP saved as a training run.

pub mod files;
pub mod fixtures;
pub mod help;
pub mod hub_cache;
#[cfg(feature = "model")]
pub mod model;
pub mod process;
pub mod shards;
#[cfg(feature = "tensors")]
pub mod tensors;

pub use files::files_under;
pub use fixtures::{fixture_dir, workspace_root};
pub use process::{failed_stderr, ok, run, Runner};
