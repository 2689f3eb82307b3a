//! Helpers shared by tic-splits' integration tests: its fixtures, its binaries run with a quiet
//! log, tab-separated records compared byte for byte.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;
use tic_testkit::Runner;

pub use tic_testkit::files_under;

/// tic-splits' binaries log warnings and errors only in these tests.
const BINARIES: Runner = Runner::WARN_LOG;

/// `crates/tic-splits/tests/fixtures/<rel>`.
pub fn fixture(rel: &str) -> PathBuf {
    tic_testkit::fixture_dir("tic-splits").join(rel)
}

/// Runs a binary; returns its output.
pub fn run(bin: &str, args: &[&str]) -> Output {
    BINARIES.run(bin, args)
}

/// Runs a binary and asserts success; returns stdout.
pub fn run_ok(bin: &str, args: &[&str]) -> String {
    BINARIES.run_ok(bin, args)
}

/// Runs a binary, asserts failure, returns stderr.
pub fn run_err(bin: &str, args: &[&str]) -> String {
    BINARIES.run_err(bin, args)
}

/// The raw bytes of every record of a tab-separated file (header first), record terminators
/// included, so quoting is compared exactly.
pub fn raw_records(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(b'\t')
        .has_headers(false)
        .from_reader(&bytes[..]);
    let mut starts = Vec::new();
    let mut rec = csv::ByteRecord::new();
    loop {
        let pos = rdr.position().byte() as usize;
        if !rdr.read_byte_record(&mut rec).unwrap() {
            break;
        }
        starts.push(pos);
    }
    starts.push(bytes.len());
    starts
        .windows(2)
        .map(|w| bytes[w[0]..w[1]].to_vec())
        .collect()
}
