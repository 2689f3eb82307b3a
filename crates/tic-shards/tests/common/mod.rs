//! Helpers shared by the tic-shards integration tests (those other crates' tests need too are
//! in tic-testkit).
#![allow(dead_code)]

use sha2::Digest;
use std::collections::BTreeMap;
use std::path::Path;
use tic_shards::Uid;
use tic_testkit::files_under;
use tic_testkit::shards::{pool_uids, write_subset};

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
