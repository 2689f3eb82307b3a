//! `--report_to tensorboard` end to end: tiny runs write TensorBoard event files that the real
//! `tensorboard` package reads back (`EventAccumulator`, in `fixtures/check_tensorboard.py`)
//! with OpenCLIP's tags, steps and the run's own values; a run killed with SIGKILL after a
//! checkpoint and resumed shows every step once and trains bit-identically to a run without
//! the flag.
//!
//! The Python half needs a python with `tensorboard` (`make deps` installs it into `python3`;
//! `TIC_TB_PYTHON=/path/to/python` picks another). Without one it is skipped with a message;
//! the event files are still read back and CRC-checked by tic-train's own reader.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tic_train::tensorboard::{event_files, read_events, What, FILE_VERSION};

mod common;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tic-train"))
}

/// A python that imports `tensorboard`, or `None` (with the reason printed) when there is none.
fn tensorboard_python() -> Option<String> {
    let py = std::env::var("TIC_TB_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import tensorboard"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "SKIPPED the TensorBoard read-back: {py} cannot import tensorboard (run `make deps`, \
             or set TIC_TB_PYTHON to a python with `pip install tensorboard`)"
        );
    }
    ok.then_some(py)
}

/// Runs `fixtures/check_tensorboard.py RUN ARGS...` when a python with tensorboard exists.
fn check_with_tensorboard(run: &Path, args: &[&str]) {
    let Some(py) = tensorboard_python() else {
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/check_tensorboard.py");
    let out = Command::new(py)
        .arg(script)
        .arg(run)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "check_tensorboard.py failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "tensorboard read back: {}",
        String::from_utf8_lossy(&out.stdout).trim()
    );
}

/// tic-train's reader: every file CRC-clean, starting with the version event; the number of
/// files.
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

/// 2 epochs of 10 steps, logged every 3rd step of an epoch and at its end, with the zero-shot
/// validation after each epoch.
#[test]
fn tensorboard_has_openclips_curves() {
    let d = tempfile::tempdir().unwrap();
    let years = common::yearly_pool(d.path(), 1, 480, 1, 0.1);
    tic_shards::synth::run(&tic_shards::synth::SynthArgs {
        static_samples: 20,
        ..common::synth_args(&d.path().join("val"), 2, 20, 1, 1, 32, 0.1)
    })
    .unwrap();
    let val = d.path().join("val/static");
    let out = d.path().join("runs");
    let extra = [
        "--report_to",
        "tensorboard",
        "--log_every_n_steps",
        "3",
        "--imagenet_val",
        val.to_str().unwrap(),
    ];
    ok(tiny(&years[0], &out, "320", &extra));
    let run = out.join("r");
    assert_eq!(check_frames(&run), 1);
    check_with_tensorboard(&run, &["--steps_per_epoch", "10", "--every", "3", "--val"]);

    let r = tiny(&years[0], &out, "320", &["--report_to", "tensorbord"])
        .output()
        .unwrap();
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("--report_to \"tensorbord\""));
}

/// Killed (SIGKILL) after the epoch-1 checkpoint at step 20 and a few steps more, then rerun:
/// each step once in TensorBoard with the kept run's values, and the weights of a run without
/// the flag.
#[test]
fn killed_run_resumes_without_duplicated_steps() {
    let d = tempfile::tempdir().unwrap();
    let years = common::yearly_pool(d.path(), 1, 480, 1, 0.1);
    let (plain, killed) = (d.path().join("plain"), d.path().join("killed"));
    ok(tiny(&years[0], &plain, "640", &[]));

    let extra = ["--report_to", "tensorboard", "--log_every_n_steps", "1"];
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
    let log = std::fs::read_to_string(killed.join("r/out.log")).unwrap();
    assert!(log.contains("resuming at step 20"), "{log}");
    let latest = |run: &PathBuf| std::fs::read(run.join("r/checkpoints/epoch_latest.safetensors"));
    assert!(
        latest(&plain).unwrap() == latest(&killed).unwrap(),
        "reporting to TensorBoard changed the training"
    );
    assert_eq!(check_frames(&killed.join("r")), 2);
    check_with_tensorboard(
        &killed.join("r"),
        &[
            "--steps_per_epoch",
            "20",
            "--every",
            "1",
            "--expect_orphans",
        ],
    );
}
