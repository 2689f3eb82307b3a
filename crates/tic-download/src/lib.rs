//! `tic-download`: DataComp's `download_upstream.py` and the img2dataset 1.40 run it makes, in
//! Rust — the metadata parquets from the Hugging Face hub, then every image URL fetched on one
//! async client, decoded, resized and face-blurred on a CPU pool and written as img2dataset's
//! WebDataset shards (`{:08d}.tar`, `.parquet`, `_stats.json`), so that `tic-reshard` and every
//! later stage take the pool unchanged (or as img2dataset's `files`, `parquet` or `dummy`
//! output). Beyond the original: `--subset` uid arrays (only the TiC
//! years you train on) and a checked resume after any kill.
//!
//! Modules, bottom up (each uses only those before it): `args` (the flags), `exif` (the `exif`
//! field: exifread's tags as img2dataset prints them), `resize` (OpenCV's
//! area and Lanczos-4 resize), `blur` (img2dataset's face blurrer), `pixels` (decode → resize →
//! blur → encode), `http` (fetching as urllib does, with limits and retries), `metadata` (hub
//! fetch, parquet rows, subsets, shard plan), `writer` (a shard's files per output format, and completion), `run`
//! (the whole command).

pub mod args;
pub mod blur;
pub mod exif;
pub mod http;
mod kernels;
pub mod metadata;
pub mod pixels;
pub mod resize;
pub mod run;
pub mod writer;

pub use args::DownloadArgs;
pub use run::run;
