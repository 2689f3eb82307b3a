//! tic-shards: the WebDataset shard layer of tic-rs, shared by every other crate.
//!
//! - [`uid`]: 128-bit DataComp uids; [`npy`] and [`pickle`]: the UID files TiC-CLIP publishes.
//! - [`wds`]: tar shards as samples; [`shardfmt`]: `{:08d}.tar`-style names.
//! - [`storage`]: local paths and object-store URLs; [`atomic`]: temp + rename writes.
//! - [`cli`]: logging and progress bars for the binaries.

pub mod atomic;
pub mod cli;
pub mod npy;
pub mod pickle;
pub mod shardfmt;
pub mod storage;
pub mod uid;
pub mod wds;

pub use uid::Uid;
