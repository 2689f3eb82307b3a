//! `tic-train` end to end: DataComp's output layout, strategy chaining across time steps
//! (warm starts found by name), LwF and patching, resume of a finished run, clear errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tic-train"))
}

/// A temporary folder holding a synthetic pool split into two "years" of 4 shards each
/// (renumbered, with sizes.json) under `yearly/`; returns the folder (removed when dropped),
/// `yearly/` and `runs/` (for the runs' output).
fn years() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    common::yearly_pool(d.path(), 1, 480, 2, 0.1);
    let (yearly, runs) = (d.path().join("yearly"), d.path().join("runs"));
    (d, yearly, runs)
}

fn train(args: &[&str]) -> Output {
    bin()
        .args(common::tiny_cpu_args("32", "128", "2"))
        .args(args)
        .output()
        .unwrap()
}

/// [`train`] with `--strategy STRATEGY --data_dir DATA --output_dir OUT`, then `extra`.
fn train_strategy(strategy: &str, data: &str, out: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "--strategy",
        strategy,
        "--data_dir",
        data,
        "--output_dir",
        out,
    ];
    args.extend_from_slice(extra);
    train(&args)
}

#[test]
fn layout_strategies_and_resume() {
    let (_d, y, o) = years();
    let (y14, y15) = (y.join("2014"), y.join("2015"));
    let dd1 = y14.to_str().unwrap().to_string();
    let dd2 = format!("{}::{}", y14.display(), y15.display());
    let o_s = o.to_str().unwrap();

    // Time step 0.
    let r = train_strategy("cumulative-exp", &dd1, o_s, &[]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let run = o.join("cumulative-exp_2014");
    for f in [
        "checkpoints/epoch_2.safetensors",
        "checkpoints/epoch_latest.safetensors",
        "checkpoints/train_state.json",
        "params.txt",
        "params.yaml",
        "out.log",
        "metrics.jsonl",
        "model_config.json",
        "info.json",
    ] {
        assert!(run.join(f).exists(), "{f} missing");
    }
    // 128 samples / 2 checkpoints / batch 32 = 2 steps per epoch, 4 in all.
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 4);
    let cfg = tic_model::ClipConfig::from_json_file(&run.join("model_config.json")).unwrap();
    assert_eq!(cfg.text_cfg.context_length, 32);
    let params = std::fs::read_to_string(run.join("params.txt")).unwrap();
    assert!(params.contains("total_steps: 4"), "{params}");
    assert!(params.contains("wd: 0.2"), "{params}");
    // The model file loads as an OpenCLIP-named state dict of this config.
    tic_model::checkpoint::load_clip(
        &cfg,
        &run.join("checkpoints/epoch_latest.safetensors"),
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )
    .unwrap();

    // Time step 1 warm-starts from step 0's run, found by name.
    let r = train_strategy("cumulative-exp", &dd2, o_s, &[]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let run2 = o.join("cumulative-exp_2015");
    let log = std::fs::read_to_string(run2.join("out.log")).unwrap();
    assert!(
        log.contains("initialising weights from") && log.contains("cumulative-exp_2014"),
        "{log}"
    );
    // Running it again resumes the finished run: nothing more is trained.
    let r = train_strategy("cumulative-exp", &dd2, o_s, &[]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let metrics = std::fs::read_to_string(run2.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 4);

    // A warm start without the previous step is a clear error.
    let r = train_strategy("sequential", &dd2, o_s, &[]);
    assert!(!r.status.success());
    let e = String::from_utf8_lossy(&r.stderr);
    assert!(
        e.contains("sequential_2014") && e.contains("missing"),
        "{e}"
    );

    // LwF and patching with an explicit previous model.
    let prev = run.join("checkpoints/epoch_latest.safetensors");
    for s in ["lwf", "patching"] {
        let r = train_strategy(s, &dd2, o_s, &["--prev_checkpoint", prev.to_str().unwrap()]);
        assert!(
            r.status.success(),
            "{s}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
    }
    let log = std::fs::read_to_string(o.join("patching_2015/out.log")).unwrap();
    assert!(log.contains("patched"), "{log}");

    // The loader alone.
    let r = bin()
        .args([
            "--scale",
            "tiny",
            "--data_dir",
            &dd2,
            "--output_dir",
            o_s,
            "--loader_benchmark",
            "5",
            "--workers",
            "2",
        ])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert!(v["samples_per_s"].as_f64().unwrap() > 0.0);

    // Mixed bf16 runs (f32 master weights are saved).
    let r = train(&[
        "--data_dir",
        &dd1,
        "--output_dir",
        o_s,
        "--exp_name",
        "bf16",
        "--precision",
        "bf16",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let m = std::fs::read_to_string(o.join("bf16/metrics.jsonl")).unwrap();
    for l in m.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["loss"].as_f64().unwrap().is_finite(), "{l}");
    }
    // Diverging runs are not silently continued: skipped steps are counted, then it stops.
    let r = bin()
        .args(common::tiny_cpu_args("16", "320", "1"))
        .args([
            "--data_dir",
            &dd1,
            "--output_dir",
            o_s,
            "--exp_name",
            "diverge",
            "--lr",
            "1e30",
        ])
        .output()
        .unwrap();
    assert!(!r.status.success());
    let e = String::from_utf8_lossy(&r.stderr);
    assert!(
        e.contains("stopping at step") && e.contains("non-finite"),
        "{e}"
    );
    let log = std::fs::read_to_string(o.join("diverge/out.log")).unwrap();
    assert!(log.contains("step skipped"), "{log}");

    // Bad input names the problem.
    let r = train(&["--data_dir", "/nonexistent/dir", "--output_dir", o_s]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("/nonexistent/dir"));
}

#[test]
fn imagenet_val_and_openclip_run_controls() {
    let (d, _, o) = years();
    // A small classification set in DataComp's layout (shards under test/), from tic-synth.
    tic_shards::synth::run(&tic_shards::synth::SynthArgs {
        static_samples: 40,
        ..common::synth_args(&d.path().join("val"), 2, 20, 1, 1, 32, 0.1)
    })
    .unwrap();
    let val = d.path().join("val/static");
    let y14 = d.path().join("yearly/2014");
    let train_with_val = |exp: &str, val: &Path| {
        train(&[
            "--data_dir",
            y14.to_str().unwrap(),
            "--output_dir",
            o.to_str().unwrap(),
            "--exp_name",
            exp,
            "--imagenet_val",
            val.to_str().unwrap(),
            "--zeroshot_frequency",
            "1",
        ])
    };
    let r = train_with_val("val", &val);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let results = std::fs::read_to_string(o.join("val/checkpoints/results.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = results
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "one record per epoch: {results}");
    for (i, rec) in lines.iter().enumerate() {
        assert_eq!(rec["epoch"], i as u64 + 1);
        assert_eq!(rec["num_samples"], 40);
        let (t1, t5) = (
            rec["imagenet-zeroshot-val-top1"].as_f64().unwrap(),
            rec["imagenet-zeroshot-val-top5"].as_f64().unwrap(),
        );
        assert!((0.0..=1.0).contains(&t1) && t1 <= t5 && t5 <= 1.0, "{rec}");
    }
    let log = std::fs::read_to_string(o.join("val/out.log")).unwrap();
    assert!(
        log.contains("Eval Epoch: 2 imagenet-zeroshot-val-top1: "),
        "{log}"
    );

    // OpenCLIP's run controls: zero-shot at its default frequency (every 2nd epoch and the
    // last), contrastive validation on held-out shards every epoch, per-rank logs, epoch_1
    // deleted once epoch_2 is saved; the training itself is unchanged.
    let held_out = d.path().join("yearly/2015");
    let r = train(&[
        "--data_dir",
        y14.to_str().unwrap(),
        "--output_dir",
        o.to_str().unwrap(),
        "--exp_name",
        "controls",
        "--imagenet_val",
        val.to_str().unwrap(),
        "--val_data",
        held_out.to_str().unwrap(),
        "--val_num_samples",
        "50",
        "--save_frequency",
        "1",
        "--delete_previous_checkpoint",
        "--save_most_recent",
        "--log_local",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    check_run_controls(&o.join("controls"), &o.join("val"));

    // A folder that is no classification set fails before any training, naming the flag.
    let r = train_with_val("bad", &y14);
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("--imagenet_val"), "{err}");
    assert!(!o.join("bad/checkpoints/epoch_latest.safetensors").exists());
}

/// What `imagenet_val_and_openclip_run_controls`'s run with OpenCLIP's run controls
/// left in `run`, against `plain`, the same training without them.
fn check_run_controls(run: &Path, plain: &Path) {
    let text = std::fs::read_to_string(run.join("checkpoints/results.jsonl")).unwrap();
    let recs: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let zero_shot: Vec<u64> = recs
        .iter()
        .filter(|r| r.get("imagenet-zeroshot-val-top1").is_some())
        .map(|r| r["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(
        zero_shot,
        [2],
        "zero-shot every 2nd epoch and the last: {text}"
    );
    let val: Vec<&serde_json::Value> = recs
        .iter()
        .filter(|r| r.get("clip_val_loss").is_some())
        .collect();
    assert_eq!(val.len(), 2, "val every epoch: {text}");
    for (i, v) in val.iter().enumerate() {
        assert_eq!(v["epoch"], i as u64 + 1);
        assert_eq!(v["num_samples"], 50);
        let loss = v["clip_val_loss"].as_f64().unwrap();
        assert!(loss.is_finite() && loss > 0.0, "{v}");
        for dir in ["image_to_text", "text_to_image"] {
            let (r1, r10) = (
                v[format!("{dir}_R@1")].as_f64().unwrap(),
                v[format!("{dir}_R@10")].as_f64().unwrap(),
            );
            assert!((0.0..=1.0).contains(&r1) && r1 <= r10, "{v}");
            let mean = v[format!("{dir}_mean_rank")].as_f64().unwrap();
            assert!((1.0..=50.0).contains(&mean), "{v}");
        }
    }
    let log = std::fs::read_to_string(run.join("out.log")).unwrap();
    assert!(
        log.contains("Eval Epoch: 1 image_to_text_mean_rank: "),
        "{log}"
    );
    let local = std::fs::read_to_string(run.join("out-0.log")).unwrap();
    assert!(
        local.contains("Eval Epoch: 2 ") && local.lines().count() > 3,
        "{local}"
    );
    let ck = run.join("checkpoints");
    assert!(
        !ck.join("epoch_1.safetensors").exists(),
        "epoch_1 deleted after epoch_2"
    );
    assert!(ck.join("epoch_2.safetensors").exists());
    // Bit-identical training: the same losses and the same final weights.
    let losses = |p: &Path| -> Vec<String> {
        std::fs::read_to_string(p.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"].to_string())
            .collect()
    };
    assert_eq!(losses(run), losses(plain));
    let weights = |p: &Path| std::fs::read(p.join("checkpoints/epoch_latest.safetensors")).unwrap();
    assert!(weights(run) == weights(plain), "final weights differ");
}

/// Issue 16: `--data_dir 'pipe:cat …/{…}.tar'` with `--dataset_resampled` trains exactly as the
/// same run over the files (shards counted as they are streamed); without resampling it is a
/// clear error; a failing command and a truncated stream are errors naming the shard's command.
#[test]
fn pipe_data_dir_trains_like_the_files() {
    let (_d, y, o) = years();
    let y14 = y.join("2014");
    let o_s = o.to_str().unwrap();
    let files = y14.to_str().unwrap().to_string();
    let piped = format!("pipe:cat {}/{{00000000..00000003}}.tar", y14.display());
    for (name, dd) in [("files", &files), ("piped", &piped)] {
        let r = train(&[
            "--data_dir",
            dd,
            "--dataset_resampled",
            "--exp_name",
            name,
            "--output_dir",
            o_s,
        ]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    }
    let losses = |name: &str| common::metrics_losses(&o.join(name).join("metrics.jsonl"));
    let want = losses("files");
    assert_eq!(want.len(), 4);
    assert_eq!(losses("piped"), want);

    // Without --dataset_resampled the counts are needed: the error says what to pass.
    let r = train(&[
        "--data_dir",
        &piped,
        "--exp_name",
        "nores",
        "--output_dir",
        o_s,
    ]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success());
    assert!(
        err.contains("--dataset_resampled") && err.contains("--train_num_samples"),
        "{err}"
    );

    let missing = format!("pipe:cat {}/nonexistent.tar", y14.display());
    let cut = format!("pipe:head -c 1000 {}/00000000.tar", y14.display());
    for (dd, want) in [
        ("pipe:false", "exit status: 1"),
        (missing.as_str(), "No such file"),
        (cut.as_str(), "truncated tar stream"),
    ] {
        let r = train(&[
            "--data_dir",
            dd,
            "--dataset_resampled",
            "--exp_name",
            "bad",
            "--output_dir",
            o_s,
        ]);
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(!r.status.success(), "{dd}");
        assert!(err.contains(dd) && err.contains(want), "{dd}: {err}");
    }
}
