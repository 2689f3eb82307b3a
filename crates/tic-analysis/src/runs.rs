//! Reading the files `tic-train` writes into a run folder: `compute.json` (the model's
//! training compute) and `metrics.jsonl` (one line per optimizer step).
//!
//! Every read of a tic-train run file in this crate goes through here, behind a narrow
//! interface ([`samples_seen`], [`read_compute`], [`read_step_log`], [`is_training_run`]), so
//! that the file formats have one reader on this side, matched to the writer in `tic-train`.

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;

/// The training-compute file of a run (also copied next to a model's evaluation results).
pub const COMPUTE_FILE: &str = "compute.json";
/// The per-step log of a run.
pub const STEP_LOG_FILE: &str = "metrics.jsonl";

/// What the analysis uses of a run's `compute.json`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
pub struct Compute {
    /// Samples seen by the run's training.
    #[serde(default)]
    pub samples_seen: Option<f64>,
    /// Optimizer steps taken.
    #[serde(default)]
    pub steps: Option<u64>,
    /// Whether training finished.
    #[serde(default)]
    pub finished: Option<bool>,
}

/// `compute.json` as `tic-metrics` reads it: only `samples_seen` (a hand-written
/// `{"samples_seen": N}` is enough).
#[derive(Debug, Default, Deserialize)]
struct SamplesSeen {
    samples_seen: Option<f64>,
}

/// Parses the JSON file `path` if it is a file (`None` when it is not).
fn read_json_file<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(Some(value))
}

/// `dir/compute.json`'s `samples_seen`, if the file exists and has one.
pub fn samples_seen(dir: &Path) -> Result<Option<f64>> {
    let file: Option<SamplesSeen> = read_json_file(&dir.join(COMPUTE_FILE))?;
    Ok(file.unwrap_or_default().samples_seen)
}

/// `dir/compute.json`, if the file exists.
pub fn read_compute(dir: &Path) -> Result<Option<Compute>> {
    read_json_file(&dir.join(COMPUTE_FILE))
}

/// Whether `dir` is a training run: a folder with `compute.json` or `metrics.jsonl`.
pub fn is_training_run(dir: &Path) -> bool {
    dir.is_dir() && (dir.join(COMPUTE_FILE).is_file() || dir.join(STEP_LOG_FILE).is_file())
}

/// What the analysis uses of one line of `metrics.jsonl`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StepRecord {
    /// Seconds the step took (`step_s`).
    pub step_s: Option<f64>,
    /// Whether the step was skipped (`skipped: true`, e.g. a non-finite loss).
    pub skipped: bool,
    /// The step's loss, when finite.
    pub loss: Option<f64>,
    /// The step's throughput (`samples_per_s`), when finite.
    pub samples_per_s: Option<f64>,
}

impl StepRecord {
    fn from_json(v: &Value) -> Self {
        let finite = |key: &str| v.get(key).and_then(Value::as_f64).filter(|x| x.is_finite());
        Self {
            step_s: v.get("step_s").and_then(Value::as_f64),
            skipped: v.get("skipped").and_then(Value::as_bool) == Some(true),
            loss: finite("loss"),
            samples_per_s: finite("samples_per_s"),
        }
    }
}

/// A run's `metrics.jsonl`, read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StepLog {
    /// Its non-empty lines (a torn last line included).
    pub lines: usize,
    /// The parsed steps, in file order (a torn last line left out).
    pub steps: Vec<StepRecord>,
}

/// `dir/metrics.jsonl`, if the file exists. A last line that does not parse (a run being
/// written) is skipped with a warning; any other bad line is an error naming it.
pub fn read_step_log(dir: &Path) -> Result<Option<StepLog>> {
    let path = dir.join(STEP_LOG_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    let mut steps = Vec::with_capacity(lines.len());
    for (k, (no, line)) in lines.iter().enumerate() {
        let v: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            // A torn last line of a run being written.
            Err(_) if k + 1 == lines.len() => {
                tracing::warn!("{}:{}: skipping a torn last line", path.display(), no + 1);
                continue;
            }
            Err(e) => bail!("{}:{}: {e}", path.display(), no + 1),
        };
        steps.push(StepRecord::from_json(&v));
    }
    Ok(Some(StepLog {
        lines: lines.len(),
        steps,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compute_and_step_log() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        assert_eq!(read_compute(dir).unwrap(), None);
        assert_eq!(samples_seen(dir).unwrap(), None);
        assert!(!is_training_run(dir));
        std::fs::write(
            dir.join(COMPUTE_FILE),
            r#"{"samples_seen": 3840, "steps": 12, "batch_size": 32, "finished": false}"#,
        )
        .unwrap();
        assert!(is_training_run(dir));
        assert_eq!(samples_seen(dir).unwrap(), Some(3840.0));
        let c = read_compute(dir).unwrap().unwrap();
        assert_eq!((c.steps, c.finished), (Some(12), Some(false)));
        std::fs::write(
            dir.join(STEP_LOG_FILE),
            "{\"loss\": 2.5, \"step_s\": 0.5, \"samples_per_s\": 64}\n\n\
             {\"loss\": null, \"step_s\": 1.0, \"skipped\": true}\n{\"loss\": 2.",
        )
        .unwrap();
        let log = read_step_log(dir).unwrap().unwrap();
        assert_eq!(log.lines, 3);
        assert_eq!(log.steps.len(), 2);
        assert_eq!(log.steps[0].loss, Some(2.5));
        assert!(log.steps[1].skipped && log.steps[1].loss.is_none());
        std::fs::write(dir.join(STEP_LOG_FILE), "x\n{}\n").unwrap();
        let e = read_step_log(dir).unwrap_err().to_string();
        assert!(e.contains("metrics.jsonl:1:"), "{e}");
    }
}
