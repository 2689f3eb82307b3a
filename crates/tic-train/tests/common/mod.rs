//! Fixtures shared by tic-train's integration tests: synthetic pools and yearly splits.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// tic-synth's settings for a test pool of `samples` samples in `shards` shards over `years`
/// years (from 2014), `image` px, under `out`.
pub fn synth_args(
    out: &Path,
    seed: u64,
    samples: usize,
    shards: usize,
    years: u32,
    image: u32,
    eval_fraction: f64,
) -> tic_shards::synth::SynthArgs {
    tic_shards::synth::SynthArgs {
        out: out.to_path_buf(),
        seed,
        num_samples: samples,
        num_shards: shards,
        first_year: 2014,
        num_years: years,
        image_size: image,
        eval_fraction,
        noise: 12,
        jpeg_quality: 90,
        bench_subset: None,
        static_samples: 0,
        special_samples: 0,
        quiet: true,
    }
}

/// A synthetic 32 px pool of `samples` samples over `years` years under `root/synth`, split
/// into `root/yearly/{2014+y}` folders of 4 renumbered shards each, with `sizes.json` and a
/// `meta.json` (as tic-reshard writes them). Returns the year folders, oldest first.
pub fn yearly_pool(
    root: &Path,
    seed: u64,
    samples: usize,
    years: u32,
    eval_fraction: f64,
) -> Vec<PathBuf> {
    let synth = root.join("synth");
    tic_shards::synth::run(&synth_args(
        &synth,
        seed,
        samples,
        4 * years as usize,
        years,
        32,
        eval_fraction,
    ))
    .unwrap();
    let sizes: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(synth.join("pool/sizes.json")).unwrap()).unwrap();
    (0..years as usize)
        .map(|y| {
            let dir = root.join("yearly").join(format!("{}", 2014 + y));
            std::fs::create_dir_all(&dir).unwrap();
            let mut out = serde_json::Map::new();
            for j in 0..4 {
                let src = format!("{:08}.tar", y * 4 + j);
                let dst = format!("{j:08}.tar");
                std::fs::copy(synth.join("pool").join(&src), dir.join(&dst)).unwrap();
                out.insert(dst, sizes[&src].clone());
            }
            std::fs::write(dir.join("sizes.json"), serde_json::to_string(&out).unwrap()).unwrap();
            std::fs::write(
                dir.join("meta.json"),
                r#"{"output_shard_count": 4, "output_shard_format": "{:08d}.tar"}"#,
            )
            .unwrap();
            dir
        })
        .collect()
}

/// (step, loss) of every line of the `metrics.jsonl` in the run folder `run`, in order.
pub fn steps_and_losses(run: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap())
        })
        .collect()
}

/// The `loss` of every line of a run's `metrics.jsonl`, in order.
pub fn metrics_losses(metrics_jsonl: &std::path::Path) -> Vec<f64> {
    std::fs::read_to_string(metrics_jsonl)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"]
                .as_f64()
                .unwrap()
        })
        .collect()
}

/// `tic-train`'s arguments of a tiny run on the CPU with one loader worker, quietly:
/// `--scale tiny --batch_size BATCH --train_num_samples SAMPLES --num_checkpoints CHECKPOINTS
/// --workers 1 --device cpu -q`.
pub fn tiny_cpu_args(batch: &str, samples: &str, checkpoints: &str) -> Vec<String> {
    [
        "--scale",
        "tiny",
        "--batch_size",
        batch,
        "--train_num_samples",
        samples,
        "--num_checkpoints",
        checkpoints,
        "--workers",
        "1",
        "--device",
        "cpu",
        "-q",
    ]
    .map(String::from)
    .to_vec()
}
