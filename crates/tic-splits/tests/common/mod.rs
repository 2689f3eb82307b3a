//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `crates/tic-splits/tests/fixtures/<rel>`.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// Runs a binary; returns its output.
pub fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("running {bin}: {e}"))
}

/// Runs a binary and asserts success; returns stdout.
pub fn run_ok(bin: &str, args: &[&str]) -> String {
    let o = run(bin, args);
    assert!(
        o.status.success(),
        "{bin} {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Runs a binary, asserts failure, returns stderr.
pub fn run_err(bin: &str, args: &[&str]) -> String {
    let o = run(bin, args);
    assert!(!o.status.success(), "{bin} {args:?} unexpectedly succeeded");
    String::from_utf8_lossy(&o.stderr).into_owned()
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

/// Every file below `dir` (relative paths, sorted).
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(base, &p, out);
                } else {
                    out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
                }
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}
