//! Reading the files `tic-train` writes into a run folder — `compute.json` (the model's
//! training compute), `metrics.jsonl` (one line per optimizer step) and
//! `checkpoints/results.jsonl` (the `--imagenet_val` zero-shot results) — through tic-train's
//! own record types ([`tic_train::records`], [`tic_train::zeroshot`]), so each format has one
//! definition, beside its writer. Every read of a run file in this crate goes through here.

use anyhow::Result;
use std::path::Path;
use tic_eval::run_folder::CHECKPOINTS_DIR;
use tic_train::records::{self, ComputeRecord, MetricsLog, MetricsRecord};
use tic_train::zeroshot::{ZeroShotResult, RESULTS_FILE};

/// `dir/compute.json`'s `samples_seen`, if the file exists and has one.
pub fn samples_seen(dir: &Path) -> Result<Option<f64>> {
    Ok(read_compute(dir)?
        .and_then(|c| c.samples_seen)
        .and_then(|n| n.as_f64()))
}

/// `dir/compute.json`, if the file exists.
pub fn read_compute(dir: &Path) -> Result<Option<ComputeRecord>> {
    let path = dir.join(records::COMPUTE_FILE);
    path.is_file()
        .then(|| ComputeRecord::read(&path))
        .transpose()
}

/// `dir/metrics.jsonl`, if the file exists. A last line that does not parse (a run being
/// written) is left out with a warning; any other bad line is an error naming it.
pub fn read_step_log(dir: &Path) -> Result<Option<MetricsLog>> {
    let path = dir.join(records::METRICS_FILE);
    path.is_file()
        .then(|| records::read_metrics(&path))
        .transpose()
}

/// Whether `dir` is a training run: a folder with `compute.json` or `metrics.jsonl`.
pub fn is_training_run(dir: &Path) -> bool {
    dir.is_dir()
        && (dir.join(records::COMPUTE_FILE).is_file() || dir.join(records::METRICS_FILE).is_file())
}

/// A step's value of `field` when it is finite (the loss and throughput means skip the rest).
pub fn finite(field: Option<f64>) -> Option<f64> {
    field.filter(|x| x.is_finite())
}

/// Non-empty lines of a step log, a torn last line included (the step count of a run
/// without `compute.json`).
pub fn logged_lines(log: &MetricsLog) -> usize {
    log.records.len() + usize::from(log.torn_last_line.is_some())
}

/// The records of the steps that were applied (not skipped for a non-finite loss).
pub fn applied_steps(log: &MetricsLog) -> impl Iterator<Item = &MetricsRecord> {
    log.records.iter().filter(|r| !r.skipped)
}

/// The training curves tic-report draws, in its order: (file stem, title, y axis).
pub const CURVES: [(&str, &str, &str); 4] = [
    ("training_loss", "Training loss", "loss"),
    ("training_lr", "Learning rate", "lr"),
    ("training_samples_per_s", "Throughput", "samples/s"),
    (
        "training_zero_shot_top1",
        "Zero-shot top-1 (--imagenet_val)",
        "top-1 (%)",
    ),
];

/// The folder next to tic-report's report that holds the training curves.
pub const CURVES_DIR: &str = "training_curves";

/// A run's training curves, as `(step, value)` points: what TensorBoard shows of it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrainingCurves {
    /// The loss of every applied step (finite values only).
    pub loss: Vec<(f64, f64)>,
    /// The learning rate of every step.
    pub lr: Vec<(f64, f64)>,
    /// Throughput of every applied step (samples/s).
    pub samples_per_s: Vec<(f64, f64)>,
    /// Zero-shot top-1 accuracy (in [0, 1]) at the steps it was evaluated (`results.jsonl`).
    pub zero_shot_top1: Vec<(f64, f64)>,
}

impl TrainingCurves {
    /// The points of [`CURVES`]`[i]` (top-1 in %).
    pub fn curve(&self, i: usize) -> Vec<(f64, f64)> {
        match i {
            0 => self.loss.clone(),
            1 => self.lr.clone(),
            2 => self.samples_per_s.clone(),
            _ => self
                .zero_shot_top1
                .iter()
                .map(|&(x, y)| (x, 100.0 * y))
                .collect(),
        }
    }

    /// Whether no curve has a point.
    pub fn is_empty(&self) -> bool {
        self.loss.is_empty()
            && self.lr.is_empty()
            && self.samples_per_s.is_empty()
            && self.zero_shot_top1.is_empty()
    }
}

/// The curves of the run in `dir` (from `metrics.jsonl`, already read as `log`, and
/// `checkpoints/results.jsonl`; either may be missing).
pub fn training_curves(dir: &Path, log: Option<&MetricsLog>) -> Result<TrainingCurves> {
    let mut c = TrainingCurves::default();
    if let Some(log) = log {
        let pick = |f: fn(&MetricsRecord) -> Option<f64>, applied_only: bool| -> Vec<(f64, f64)> {
            log.records
                .iter()
                .filter(|r| !(applied_only && r.skipped))
                .filter_map(|r| Some((r.step as f64, finite(f(r))?)))
                .collect()
        };
        c.loss = pick(|r| r.loss, true);
        c.lr = pick(|r| r.lr, false);
        c.samples_per_s = pick(|r| r.samples_per_s, true);
    }
    let results = dir.join(CHECKPOINTS_DIR).join(RESULTS_FILE);
    c.zero_shot_top1 = ZeroShotResult::read_records(&results)?
        .into_iter()
        .map(|(_, step, r)| (step as f64, r.top1))
        .collect();
    Ok(c)
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
            dir.join(records::COMPUTE_FILE),
            r#"{"samples_seen": 3840, "steps": 12, "batch_size": 32, "finished": false}"#,
        )
        .unwrap();
        assert!(is_training_run(dir));
        assert_eq!(samples_seen(dir).unwrap(), Some(3840.0));
        let c = read_compute(dir).unwrap().unwrap();
        assert_eq!((c.steps, c.finished), (Some(12), Some(false)));
        std::fs::write(
            dir.join(records::METRICS_FILE),
            "{\"step\": 1, \"loss\": 2.5, \"step_s\": 0.5, \"samples_per_s\": 64}\n\n\
             {\"step\": 2, \"loss\": null, \"step_s\": 1.0, \"skipped\": true}\n{\"loss\": 2.",
        )
        .unwrap();
        let log = read_step_log(dir).unwrap().unwrap();
        assert_eq!(logged_lines(&log), 3);
        assert_eq!(log.records.len(), 2);
        assert_eq!(log.records[0].loss, Some(2.5));
        assert!(log.records[1].skipped && log.records[1].loss.is_none());
        assert_eq!(applied_steps(&log).count(), 1);
        std::fs::write(dir.join(records::METRICS_FILE), "x\n{}\n").unwrap();
        let e = read_step_log(dir).unwrap_err().to_string();
        assert!(e.contains("metrics.jsonl:1:"), "{e}");
    }
}
