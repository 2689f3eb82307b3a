//! `--report_to tensorboard,wandb` end to end: tiny runs write TensorBoard event files that the
//! real `tensorboard` package reads back (`EventAccumulator`, in `fixtures/check_tensorboard.py`)
//! and W&B offline runs that the real `wandb sync` uploads to a stand-in server on 127.0.0.1
//! (`fixtures/check_wandb.py`), with OpenCLIP's tags, steps and the run's own values; a run
//! killed with SIGKILL after a checkpoint and resumed shows every step once and trains
//! bit-identically to a run without the flag.
//!
//! The Python halves need a python with `tensorboard` and one with `wandb` (`make deps` installs
//! both into `python3`; `TIC_TB_PYTHON` / `TIC_WANDB_PYTHON` pick others). Without them they are
//! skipped with a message; the files are still read back and CRC-checked by tic-train's own
//! readers.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tic_train::tensorboard::{event_files, read_events, What, FILE_VERSION};
use tic_train::wandb::{read_records, RecordType};

mod common;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tic-train"))
}

/// The python in `$var` (default `python3`) when it imports `module`, or `None` (with the
/// reason printed).
fn python_with(module: &str, var: &str) -> Option<String> {
    let py = std::env::var(var).unwrap_or_else(|_| "python3".into());
    let ok = tic_testkit::process::python_imports(&py, module);
    if !ok {
        eprintln!(
            "SKIPPED the {module} check: {py} cannot import {module} (run `make deps`, or set \
             {var} to a python with `pip install {module}`)"
        );
    }
    ok.then_some(py)
}

/// Runs `fixtures/SCRIPT RUN ARGS...` with a python that has `module`, when there is one.
fn check_with(module: &str, var: &str, script: &str, run: &Path, args: &[&str]) {
    let Some(py) = python_with(module, var) else {
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(script);
    let out = Command::new(py)
        .arg(&script)
        .arg(run)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} failed:\n{}{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{module}: {}", String::from_utf8_lossy(&out.stdout).trim());
}

fn check_with_tensorboard(run: &Path, args: &[&str]) {
    check_with(
        "tensorboard",
        "TIC_TB_PYTHON",
        "check_tensorboard.py",
        run,
        args,
    );
}

fn check_with_wandb(run: &Path, args: &[&str]) {
    check_with("wandb", "TIC_WANDB_PYTHON", "check_wandb.py", run, args);
}

/// tic-train's reader: every event file CRC-clean, starting with the version event. Returns
/// the number of files.
fn check_frames(run: &Path) -> usize {
    let files = event_files(&run.join("tensorboard")).unwrap();
    for f in &files {
        let log = read_events(f).unwrap();
        assert_eq!(
            log.events[0].what,
            Some(What::FileVersion(FILE_VERSION.into())),
            "{}",
            f.display()
        );
    }
    files.len()
}

/// tic-train's reader: every W&B offline run's records CRC-clean, header and run record first;
/// the last one ended with an exit record. Returns the number of offline runs.
fn check_wandb_logs(run: &Path) -> usize {
    let mut runs: Vec<_> = std::fs::read_dir(run.join("wandb"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    runs.sort();
    for (k, dir) in runs.iter().enumerate() {
        let f = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "wandb"))
            .unwrap();
        let (recs, torn) = read_records(&std::fs::read(&f).unwrap()).unwrap();
        assert!(!torn, "{}", f.display());
        assert!(matches!(recs[0].record_type, Some(RecordType::Header(_))));
        assert!(matches!(recs[1].record_type, Some(RecordType::Run(_))));
        if k + 1 == runs.len() {
            let last = &recs.last().unwrap().record_type;
            assert!(matches!(last, Some(RecordType::Exit(_))), "{last:?}");
        }
    }
    runs.len()
}

fn tiny(data: &Path, out: &Path, samples: &str, extra: &[&str]) -> Command {
    let mut c = bin();
    c.args(common::tiny_cpu_args("16", samples, "2"))
        .args(["--data_dir", data.to_str().unwrap()])
        .args(["--output_dir", out.to_str().unwrap(), "--exp_name", "r"])
        .args(extra);
    c
}

fn ok(mut c: Command) {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A tiny zero-shot classification set (tic-synth's static set) under `root/val`.
fn val_set(root: &Path) -> String {
    tic_shards::synth::run(&tic_shards::synth::SynthArgs {
        static_samples: 20,
        ..common::synth_args(&root.join("val"), 2, 20, 1, 1, 32, 0.1)
    })
    .unwrap();
    root.join("val/static").to_str().unwrap().to_string()
}

/// 2 epochs of 10 steps, logged every 3rd step of an epoch and at its end, with the zero-shot
/// and contrastive (`--val_data`) validations after each epoch, to TensorBoard and W&B.
#[test]
fn tensorboard_and_wandb_have_openclips_curves() {
    let d = tempfile::tempdir().unwrap();
    let years = common::yearly_pool(d.path(), 1, 480, 1, 0.1);
    let val = val_set(d.path());
    let out = d.path().join("runs");
    let extra = [
        "--report_to",
        "tensorboard,wandb",
        "--log_every_n_steps",
        "3",
        "--imagenet_val",
        &val,
        "--zeroshot_frequency",
        "1",
    ];
    // The held-out shards: the training year's (only the records are checked here).
    let held_out = years[0].to_str().unwrap();
    let contrastive = ["--val_data", held_out, "--val_num_samples", "40"];
    ok(tiny(
        &years[0],
        &out,
        "320",
        &[&extra[..], &contrastive].concat(),
    ));
    let run = out.join("r");
    let args = [
        "--steps_per_epoch",
        "10",
        "--every",
        "3",
        "--val",
        "--contrastive",
    ];
    assert_eq!(check_frames(&run), 1);
    check_with_tensorboard(&run, &args);
    assert_eq!(check_wandb_logs(&run), 1);
    check_with_wandb(&run, &args);

    let r = tiny(&years[0], &out, "320", &["--report_to", "tensorbord"])
        .output()
        .unwrap();
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("--report_to \"tensorbord\""));
}

/// Killed (SIGKILL) after the epoch-1 checkpoint and evaluations (zero-shot, `--val_data`) at step 20 and a few
/// steps more, then rerun: each step once in TensorBoard and in the uploaded W&B run, with the
/// kept run's values (W&B's epoch-1 row at step 20, dropped with the orphaned rows, is written
/// again), and the weights of a run without the flag.
#[test]
fn killed_run_resumes_without_duplicated_steps() {
    let d = tempfile::tempdir().unwrap();
    let years = common::yearly_pool(d.path(), 1, 480, 1, 0.1);
    let val = val_set(d.path());
    let (plain, killed) = (d.path().join("plain"), d.path().join("killed"));
    ok(tiny(
        &years[0],
        &plain,
        "640",
        &["--imagenet_val", &val, "--zeroshot_frequency", "1"],
    ));

    let extra = [
        "--report_to",
        "all",
        "--log_every_n_steps",
        "1",
        "--imagenet_val",
        &val,
        "--zeroshot_frequency",
        "1",
        "--val_data",
        years[0].to_str().unwrap(),
        "--val_num_samples",
        "40",
    ];
    let mut child = tiny(&years[0], &killed, "640", &extra)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let metrics = killed.join("r/metrics.jsonl");
    let t0 = Instant::now();
    while std::fs::read_to_string(&metrics).map_or(0, |s| s.lines().count()) < 23 {
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "the run did not reach step 23"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    assert!(!child.wait().unwrap().success());
    let logged = std::fs::read_to_string(&metrics).unwrap().lines().count();
    assert!(logged < 40, "killed after the end ({logged} steps)");

    ok(tiny(&years[0], &killed, "640", &extra));
    let run = killed.join("r");
    let log = std::fs::read_to_string(run.join("out.log")).unwrap();
    assert!(log.contains("resuming at step 20"), "{log}");
    assert!(log.contains("W&B: dropped "), "{log}");
    let latest = |run: &PathBuf| std::fs::read(run.join("r/checkpoints/epoch_latest.safetensors"));
    assert!(
        latest(&plain).unwrap() == latest(&killed).unwrap(),
        "reporting changed the training"
    );
    assert_eq!(check_frames(&run), 2);
    check_with_tensorboard(
        &run,
        &[
            "--steps_per_epoch",
            "20",
            "--every",
            "1",
            "--expect_orphans",
            "--val",
            "--contrastive",
        ],
    );
    assert_eq!(check_wandb_logs(&run), 2);
    check_with_wandb(
        &run,
        &[
            "--steps_per_epoch",
            "20",
            "--every",
            "1",
            "--invocations",
            "2",
            "--val",
            "--contrastive",
        ],
    );
}
