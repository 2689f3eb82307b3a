//! Helpers shared by the tic-shards integration tests.
#![allow(dead_code)]

use clap::Parser;
use sha2::Digest;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tic_shards::synth::{self, SynthArgs};
use tic_shards::wds::{member_bytes, scan_shard};
use tic_shards::Uid;

/// Generates a small synthetic pool under `dir` and returns its folder.
pub fn pool(dir: &Path, samples: usize, shards: usize, image: u32) -> PathBuf {
    let a = SynthArgs::parse_from([
        "tic-synth",
        "--out",
        dir.to_str().unwrap(),
        "--num-samples",
        &samples.to_string(),
        "--num-shards",
        &shards.to_string(),
        "--image-size",
        &image.to_string(),
        "--quiet",
    ]);
    synth::run(&a).unwrap();
    dir.join("pool")
}

/// One sample read back: key -> (ext -> bytes).
pub type Samples = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

/// Reads every sample of the tar shards in `dir` (sorted by shard name).
pub fn read_samples(dir: &Path) -> Samples {
    let mut out = Samples::new();
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tar"))
        .collect();
    names.sort();
    for n in names {
        let data = std::fs::read(dir.join(&n)).unwrap();
        let scan = scan_shard(&data, &n);
        assert!(scan.errors.is_empty(), "{:?}", scan.errors);
        for s in scan.samples {
            let m = s
                .members
                .iter()
                .map(|m| (m.ext.clone(), member_bytes(&data, m).to_vec()))
                .collect();
            assert!(
                out.insert(s.key.clone(), m).is_none(),
                "duplicate key {}",
                s.key
            );
        }
    }
    out
}

/// Every uid of a pool folder with its sample members, in pool order.
pub fn pool_uids(dir: &Path) -> Vec<(Uid, BTreeMap<String, Vec<u8>>)> {
    let mut v = Vec::new();
    for (_, m) in read_samples(dir) {
        let j: serde_json::Value = serde_json::from_slice(&m["json"]).unwrap();
        v.push((Uid::parse(j["uid"].as_str().unwrap()).unwrap(), m));
    }
    v
}

/// Every file under `dir` (relative path -> SHA-256 of its bytes), skipping names in `skip`.
pub fn tree(dir: &Path, skip: &[&str]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in walk(dir) {
        let rel = e.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
        if skip.iter().any(|s| rel == *s) {
            continue;
        }
        let digest = sha2::Sha256::digest(std::fs::read(&e).unwrap());
        out.insert(rel, hex::encode(digest));
    }
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            v.extend(walk(&p));
        } else {
            v.push(p);
        }
    }
    v
}

/// Runs a binary of this crate.
pub fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin).args(args).output().unwrap()
}

/// Asserts a command succeeded, printing its stderr otherwise.
pub fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
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
    let mut all: Vec<Uid> = pool_uids(pool).iter().map(|x| x.0).collect();
    all.sort();
    std::fs::write(path, tic_shards::npy::write_uids(&all)).unwrap();
    all
}
