//! WebDataset shards as tests see them: the samples of a tar shard or of a folder of shards, a
//! synthetic pool to start from, and the uid subsets and arguments that reshard part of it.
//! Several crates' tests build their inputs from a synthetic pool (tic-shards' tools, tic-eval's
//! evaluation sets, tic-synth's static and special sets) and read what the tools wrote back
//! through these.

use clap::Parser;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tic_shards::synth::{self, SynthArgs};
use tic_shards::wds::{member_bytes, scan_shard};
use tic_shards::{npy, Uid};

/// The members of one sample: extension (`jpg`, `txt`, `json`, …) → bytes.
pub type Members = BTreeMap<String, Vec<u8>>;

/// Samples read back from a folder: sample key → its members.
pub type Samples = BTreeMap<String, Members>;

/// The samples of one tar shard's bytes `data` (`name` for messages), in tar order, as
/// (key, members). Asserts the shard scans without errors.
pub fn shard_samples(data: &[u8], name: &str) -> Vec<(String, Members)> {
    let scan = scan_shard(data, name);
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    scan.samples
        .into_iter()
        .map(|s| {
            let m = s
                .members
                .iter()
                .map(|m| (m.ext.clone(), member_bytes(data, m).to_vec()))
                .collect();
            (s.key, m)
        })
        .collect()
}

/// Reads every sample of the `.tar` shards in `dir` (sorted by shard name); asserts that no key
/// occurs twice.
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
        for (key, m) in shard_samples(&data, &n) {
            assert!(out.insert(key.clone(), m).is_none(), "duplicate key {key}");
        }
    }
    out
}

/// Every uid of a pool folder with its sample members, in pool order (the uid is the `uid` of
/// each sample's `json` member).
pub fn pool_uids(dir: &Path) -> Vec<(Uid, Members)> {
    let mut v = Vec::new();
    for (_, m) in read_samples(dir) {
        let j: serde_json::Value = serde_json::from_slice(&m["json"]).unwrap();
        v.push((Uid::parse(j["uid"].as_str().unwrap()).unwrap(), m));
    }
    v
}

/// Generates a small synthetic pool under `dir` (`tic-synth` with `samples` samples in `shards`
/// shards of `image` px images, quietly) and returns its pool folder, `dir/pool`.
pub fn synth_pool(dir: &Path, samples: usize, shards: usize, image: u32) -> PathBuf {
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

/// Writes `uids`, sorted, as a `.npy` uid subset file at `path` (what `tic-reshard -s` reads);
/// returns them sorted.
pub fn write_subset(path: &Path, uids: &[Uid]) -> Vec<Uid> {
    let mut sorted = uids.to_vec();
    sorted.sort();
    std::fs::write(path, npy::write_uids(&sorted)).unwrap();
    sorted
}

/// `tic-reshard`'s arguments (without the program name) that copy the samples of the uid
/// subset file `subset` from `pool` into `out`, `shard_size` samples a shard, quietly.
pub fn reshard_args(pool: &Path, out: &Path, subset: &Path, shard_size: usize) -> Vec<String> {
    let path = |p: &Path| p.to_str().unwrap().to_string();
    vec![
        "-i".into(),
        path(pool),
        "-o".into(),
        path(out),
        "-s".into(),
        path(subset),
        "-q".into(),
        "--shard-size".into(),
        shard_size.to_string(),
    ]
}

/// tic-synth's static and special evaluation sets as a tic-eval `--data_dir`, under `dir`:
/// `tic-synth --static-samples S --special-samples N` (16 px images, a token pool), the static
/// set moved beside the special ones as `wds_synth_static_test`. Returns the data folder
/// (`dir/special`, DataComp's folder names) and the static task list tic-synth wrote
/// (`synth_static` and the special tasks), moved to `dir/tasklist.yml`.
pub fn special_eval_data(dir: &Path, static_samples: usize, special: usize) -> (PathBuf, PathBuf) {
    let a = SynthArgs::parse_from([
        "tic-synth",
        "--out",
        dir.to_str().unwrap(),
        "--num-samples",
        "4",
        "--num-shards",
        "1",
        "--image-size",
        "16",
        "--static-samples",
        &static_samples.to_string(),
        "--special-samples",
        &special.to_string(),
        "--quiet",
    ]);
    synth::run(&a).unwrap();
    let data = dir.join(synth::special::SPECIAL_DIR);
    let tasklist = dir.join("tasklist.yml");
    std::fs::rename(dir.join("static/tasklist.yml"), &tasklist).unwrap();
    std::fs::rename(dir.join("static"), data.join("wds_synth_static_test")).unwrap();
    (data, tasklist)
}
