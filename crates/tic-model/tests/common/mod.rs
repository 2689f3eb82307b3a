//! What several of tic-model's integration tests read: the tiny fixture made with OpenCLIP
//! (`fixtures/make_clip_fixtures.py tiny`).
// Each test crate uses a part of it.
#![allow(dead_code)]

use std::io::Read;
use std::path::PathBuf;

/// `crates/tic-model/tests/fixtures/tiny`.
pub fn tiny_fixtures() -> PathBuf {
    tic_testkit::fixture_dir("tic-model").join("tiny")
}

/// The tiny model OpenCLIP initialised (`weights.safetensors.gz`), as safetensors bytes.
pub fn tiny_openclip_safetensors() -> Vec<u8> {
    let gz = std::fs::read(tiny_fixtures().join("weights.safetensors.gz")).unwrap();
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut out)
        .unwrap();
    out
}
