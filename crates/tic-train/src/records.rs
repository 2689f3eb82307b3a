//! The records tic-train writes into a run folder, typed: one line of `metrics.jsonl` per
//! optimizer step ([`MetricsRecord`]), `compute.json` ([`ComputeRecord`]) and
//! `checkpoints/train_state.json` ([`TrainState`]).
//!
//! tic-train writes and reads these files only through these types, and the analysis tools
//! (`tic-report`'s training runs, `tic-metrics`' compute axis) read them with [`read_metrics`]
//! and [`ComputeRecord::read`]. The bytes are those of the JSON objects tic-train always
//! wrote: the keys in field order, floats as `serde_json` prints an `f64` (shortest
//! round-trip), non-finite floats as `null`. Reading is as tolerant as the analysis needs:
//! `metrics.jsonl` and `compute.json` fields other than `step` may be missing (files written
//! by hand or by other tools), and a torn last line of `metrics.jsonl` (a killed run, or one
//! still writing) is left out.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::plan::Position;

/// The per-step log's file name, in the run folder.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// The training-compute file's name, in the run folder (also copied next to a model's
/// evaluation results).
pub const COMPUTE_FILE: &str = "compute.json";
/// The resumable state's file name, in the run folder's `checkpoints/`.
pub const TRAIN_STATE_FILE: &str = "train_state.json";

/// One line of `metrics.jsonl`: what one optimizer step did. Float fields are `None` when
/// they were not finite (written as `null`) or are missing from a line read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsRecord {
    /// Optimizer steps done, this one included (the first step is 1).
    pub step: u64,
    /// The epoch the step belongs to, from 0: `(step - 1) / steps_per_epoch` (0 when a line
    /// read back leaves it out).
    #[serde(default)]
    pub epoch: u64,
    /// The global-batch loss of the step (`(1/W) Σ_r L_r` over W ranks).
    #[serde(default)]
    pub loss: Option<f64>,
    /// The learning rate of the step (cosine schedule with warmup).
    #[serde(default)]
    pub lr: Option<f64>,
    /// The `logit_scale` parameter after the step (an f32, widened).
    #[serde(default)]
    pub logit_scale: Option<f64>,
    /// `exp(logit_scale)`: the scale applied to the logits.
    #[serde(default)]
    pub scale: Option<f64>,
    /// The gradient norm before clipping.
    #[serde(default)]
    pub grad_norm: Option<f64>,
    /// Global samples per second over the whole step (data wait included).
    #[serde(default)]
    pub samples_per_s: Option<f64>,
    /// Seconds this rank waited for its batches.
    #[serde(default)]
    pub data_wait_s: Option<f64>,
    /// Seconds the whole step took.
    #[serde(default)]
    pub step_s: Option<f64>,
    /// The step was skipped: its loss or gradient norm was not finite and no update was
    /// applied (false when a line read back leaves it out).
    #[serde(default)]
    pub skipped: bool,
}

impl MetricsRecord {
    /// The record as its `metrics.jsonl` line (one compact JSON object, no newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("a metrics record serializes")
    }

    /// Parses one `metrics.jsonl` line.
    pub fn parse(line: &str) -> serde_json::Result<Self> {
        serde_json::from_str(line)
    }
}

/// `metrics.jsonl` as read back by [`read_metrics`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricsLog {
    /// The steps' records, in file order.
    pub records: Vec<MetricsRecord>,
    /// The line number (from 1) of a last line that does not parse and was left out: torn by
    /// a kill, or still being written.
    pub torn_last_line: Option<usize>,
}

/// Reads a run's `metrics.jsonl`. Blank lines are ignored; a last line that does not parse is
/// left out with a warning ([`MetricsLog::torn_last_line`]); any other line that does not
/// parse is an error naming the file and line.
pub fn read_metrics(path: &Path) -> Result<MetricsLog> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    let mut log = MetricsLog::default();
    for (k, (no, line)) in lines.iter().enumerate() {
        match MetricsRecord::parse(line) {
            Ok(r) => log.records.push(r),
            Err(_) if k + 1 == lines.len() => {
                tracing::warn!("{}:{}: skipping a torn last line", path.display(), no + 1);
                log.torn_last_line = Some(no + 1);
            }
            Err(e) => bail!("{}:{}: {e}", path.display(), no + 1),
        }
    }
    Ok(log)
}

/// `compute.json`: the training compute of a finished run, written last (its presence means
/// the run finished; `make` targets depend on it). Every field may be missing from a file read
/// back: `tic-metrics` also takes hand-written `{"samples_seen": N}` files.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ComputeRecord {
    /// Global samples seen (`steps × batch_size`, whatever the number of ranks): the model's
    /// training compute. A JSON number: tic-train writes an integer, a hand-written file may
    /// give any number.
    #[serde(default)]
    pub samples_seen: Option<serde_json::Number>,
    /// Optimizer steps done, over every invocation of the run.
    #[serde(default)]
    pub steps: Option<u64>,
    /// Samples per optimizer step (the global batch as run).
    #[serde(default)]
    pub batch_size: Option<u64>,
    /// Whether the run reached its last step.
    #[serde(default)]
    pub finished: Option<bool>,
}

impl ComputeRecord {
    /// The record of a run that did `steps` steps of `batch_size` samples.
    pub fn of_run(steps: u64, batch_size: u64, finished: bool) -> Self {
        Self {
            samples_seen: Some((steps * batch_size).into()),
            steps: Some(steps),
            batch_size: Some(batch_size),
            finished: Some(finished),
        }
    }

    /// The file's text (pretty-printed JSON).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a compute record serializes")
    }

    /// Reads a `compute.json`.
    pub fn read(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// `checkpoints/train_state.json`: the resumable training state. It names the tensor file
/// (weights, AdamW moments and per-parameter steps) saved with it and is written after it, so
/// the pair is always consistent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimizer steps done.
    pub step: u64,
    /// Completed epochs.
    pub epoch: u64,
    /// Total optimizer steps of the run.
    pub total_steps: u64,
    /// Loader position after the last step (rank 0's; the global stream position when sampling
    /// without replacement).
    pub data_position: Position,
    /// Every rank's loader position, in rank order (ranks draw their own streams with
    /// `--dataset_resampled`); empty in states written before data parallelism.
    #[serde(default)]
    pub data_positions: Vec<Position>,
    /// Tensor file (weights and optimizer state), relative to the JSON.
    pub tensors: String,
    /// Steps skipped for non-finite loss or gradients so far.
    pub skipped_steps: u64,
    /// Settings that must not change on resume.
    pub fingerprint: serde_json::Value,
}

impl TrainState {
    /// The file's text (pretty-printed JSON).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a training state serializes")
    }

    /// Reads a `train_state.json` (not its tensors: see [`crate::state::read_state`]).
    pub fn read(path: &Path) -> Result<Self> {
        serde_json::from_slice(
            &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("{}: not a tic-train state file", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes are those of the `json!` objects tic-train wrote before these types.
    #[test]
    fn metrics_lines_are_the_json_objects_of_before() {
        let ls: f32 = 2.659_26;
        for (loss, norm, applied) in [(3.25f64, 0.1f64, true), (f64::NAN, f64::INFINITY, false)] {
            let (step, epoch, lr, batch, dt, data_s) = (7u64, 1u64, 1e-3, 256u64, 0.37, 0.0125);
            let before = serde_json::json!({
                "step": step,
                "epoch": epoch,
                "loss": loss,
                "lr": lr,
                "logit_scale": ls,
                "scale": (ls as f64).exp(),
                "grad_norm": norm,
                "samples_per_s": batch as f64 / dt,
                "data_wait_s": data_s,
                "step_s": dt,
                "skipped": !applied,
            });
            let rec = MetricsRecord {
                step,
                epoch,
                loss: Some(loss),
                lr: Some(lr),
                logit_scale: Some(ls as f64),
                scale: Some((ls as f64).exp()),
                grad_norm: Some(norm),
                samples_per_s: Some(batch as f64 / dt),
                data_wait_s: Some(data_s),
                step_s: Some(dt),
                skipped: !applied,
            };
            assert_eq!(rec.to_line(), before.to_string());
        }
    }

    #[test]
    fn compute_json_is_the_json_object_of_before() {
        let (steps, batch, finished) = (12u64, 320u64, true);
        let before = serde_json::json!({
            "samples_seen": steps * batch,
            "steps": steps,
            "batch_size": batch,
            "finished": finished,
        });
        let rec = ComputeRecord::of_run(steps, batch, finished);
        assert_eq!(
            rec.to_json(),
            serde_json::to_string_pretty(&before).unwrap()
        );
    }

    /// What the analysis reads: partial files, `null` losses, a torn last line.
    #[test]
    fn records_read_back_tolerantly() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("compute.json");
        std::fs::write(&c, r#"{"samples_seen": 300}"#).unwrap();
        let r = ComputeRecord::read(&c).unwrap();
        assert_eq!(r.samples_seen.and_then(|n| n.as_f64()), Some(300.0));
        assert_eq!((r.steps, r.finished), (None, None));
        std::fs::write(&c, r#"{"samples_seen": 1.5e3, "steps": 3}"#).unwrap();
        let r = ComputeRecord::read(&c).unwrap();
        assert_eq!(r.samples_seen.and_then(|n| n.as_f64()), Some(1500.0));

        let m = dir.path().join("metrics.jsonl");
        std::fs::write(
            &m,
            "{\"step\": 1, \"loss\": 2, \"step_s\": 0.5, \"skipped\": false}\n\n\
             {\"step\": 2, \"loss\": null, \"skipped\": true}\n{\"step\": 3, \"lo",
        )
        .unwrap();
        let log = read_metrics(&m).unwrap();
        assert_eq!(log.torn_last_line, Some(4));
        assert_eq!(log.records.len(), 2);
        assert_eq!(log.records[0].loss, Some(2.0));
        assert_eq!(log.records[0].step_s, Some(0.5));
        assert_eq!(log.records[0].samples_per_s, None);
        assert_eq!((log.records[1].loss, log.records[1].skipped), (None, true));
        std::fs::write(&m, "{\"step\": 1, \"lo\n{\"step\": 2}\n").unwrap();
        let e = read_metrics(&m).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}:1: ", m.display())), "{e}");
    }
}
