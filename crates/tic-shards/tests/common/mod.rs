//! Helpers shared by the tic-shards integration tests (those other crates' tests need too are
//! in tic-testkit).
#![allow(dead_code)]

use sha2::Digest;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use tic_shards::Uid;
use tic_testkit::files_under;
use tic_testkit::shards::{pool_uids, synth_pool, write_subset};

/// The `tic-reshard` binary under test.
pub const RESHARD: &str = env!("CARGO_BIN_EXE_tic-reshard");

/// Every file under `dir` (relative path -> SHA-256 of its bytes), skipping names in `skip`.
/// Panics when `dir` is not a folder.
pub fn tree(dir: &Path, skip: &[&str]) -> BTreeMap<String, String> {
    assert!(dir.is_dir(), "{} is not a folder", dir.display());
    let mut out = BTreeMap::new();
    for rel in files_under(dir) {
        if skip.iter().any(|s| rel == *s) {
            continue;
        }
        let digest = sha2::Sha256::digest(std::fs::read(dir.join(&rel)).unwrap());
        out.insert(rel, hex::encode(digest));
    }
    out
}

/// meta.json of a folder, without the keys that legitimately vary between runs.
pub fn meta_stable(dir: &Path) -> serde_json::Value {
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("meta.json")).unwrap()).unwrap();
    for k in [
        "num_workers",
        "worker_success",
        "cwd",
        "output_dir",
        "overwrite",
    ] {
        v.as_object_mut().unwrap().remove(k);
    }
    v
}

/// Every uid of `pool`, sorted, written as a `.npy` subset file at `path`; returns the uids.
pub fn all_uids_subset(pool: &Path, path: &Path) -> Vec<Uid> {
    let all: Vec<Uid> = pool_uids(pool).iter().map(|x| x.0).collect();
    write_subset(path, &all)
}

/// A temporary folder holding a synthetic pool of `samples` samples in `shards` shards of 16 px
/// images (under `syn/`); returns the folder (removed when dropped) and the pool folder.
pub fn temp_pool(samples: usize, shards: usize) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let pool = synth_pool(&d.path().join("syn"), samples, shards, 16);
    (d, pool)
}

/// `tic-reshard`'s arguments that copy the samples of the uid subset `sub` from `pool` into
/// `out` (`-i POOL -o OUT -s SUB`), then `extra`, as owned strings.
pub fn reshard_cmd_loud(pool: &Path, out: &Path, sub: &Path, extra: &[&str]) -> Vec<String> {
    let path = |p: &Path| p.to_str().unwrap().to_string();
    let mut v = vec![
        "-i".into(),
        path(pool),
        "-o".into(),
        path(out),
        "-s".into(),
        path(sub),
    ];
    v.extend(extra.iter().map(|x| x.to_string()));
    v
}

/// [`reshard_cmd_loud`] with `-q` before `extra`: the run logs nothing but warnings.
pub fn reshard_cmd(pool: &Path, out: &Path, sub: &Path, extra: &[&str]) -> Vec<String> {
    let quiet_extra: Vec<&str> = std::iter::once("-q").chain(extra.iter().copied()).collect();
    reshard_cmd_loud(pool, out, sub, &quiet_extra)
}

/// Runs `tic-reshard` with `args`; returns its output.
pub fn run_reshard(args: &[String]) -> Output {
    std::process::Command::new(RESHARD)
        .args(args)
        .output()
        .unwrap()
}

/// Runs `bin` with `args` and the file `stdin` on its standard input; returns its output.
pub fn run_stdin(bin: &str, args: &[String], stdin: &Path) -> Output {
    std::process::Command::new(bin)
        .args(args)
        .stdin(std::fs::File::open(stdin).unwrap())
        .output()
        .unwrap()
}

/// A process's standard error, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts that a process wrote nothing on standard output (showing what it wrote if it did).
pub fn assert_no_stdout(o: &Output) {
    assert!(
        o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

/// The `meta.json` a `tic-reshard` run wrote into `out`.
pub fn read_meta(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("meta.json")).unwrap()).unwrap()
}

/// Runs `tic-reshard` with `args` and asserts it succeeded; returns its output.
pub fn reshard_ok(args: &[String]) -> Output {
    let o = run_reshard(args);
    tic_testkit::ok(&o);
    o
}

/// [`run_stdin`], asserting the run succeeded; returns its output.
pub fn stdin_ok(bin: &str, args: &[String], stdin: &Path) -> Output {
    let o = run_stdin(bin, args, stdin);
    tic_testkit::ok(&o);
    o
}
