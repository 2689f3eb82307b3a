//! `--report_to`: the training curves a run reports besides `metrics.jsonl`, under OpenCLIP's
//! names, so that a run can be watched with `tensorboard --logdir RUN/tensorboard` as an
//! OpenCLIP run is.
//!
//! What OpenCLIP's `train_one_epoch` / `evaluate` log (v2.24.0), and what each is here:
//! - at every `--log_every_n_steps`-th step of an epoch (its first step included) and at its
//!   last step, at step `global_step` counted from 0 (`metrics.jsonl`'s `step` − 1):
//!   `train/loss` (`loss`, the global batch's), `train/lr` (`lr`), `train/scale` (`scale`,
//!   `exp(logit_scale)`), `train/samples_per_second` (`samples_per_s`),
//!   `train/samples_per_second_per_gpu` (`samples_per_s` / ranks), `train/data_time`
//!   (`data_wait_s`), `train/batch_time` (`step_s`);
//! - after each epoch with `--imagenet_val`, at step = epochs completed:
//!   `val/imagenet-zeroshot-val-top1` and `-top5` (as in `checkpoints/results.jsonl`).
//!
//! Only the writer (rank 0) reports. Each invocation writes a new event file (the format is
//! [`crate::tensorboard`]'s) that starts with a `SessionLog.START` at the step it resumes from:
//! TensorBoard then drops what a killed invocation logged after its last checkpoint, so each
//! step appears once, with the value of the run that was kept.

use anyhow::{bail, Result};

use crate::records::MetricsRecord;
use crate::state::RunDir;
use crate::tensorboard::EventWriter;
use crate::zeroshot::{ZeroShotResult, RESULTS_FILE};

/// The TensorBoard folder in the run folder (OpenCLIP's `{logs}/{name}/tensorboard`).
pub const TENSORBOARD_DIR: &str = "tensorboard";

/// Where a run reports its training curves (`--report_to`, `--report_to_wandb`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Report {
    /// TensorBoard event files in `{run}/tensorboard/`.
    pub tensorboard: bool,
    /// Report every this many steps of an epoch (and at its first and last step), as
    /// OpenCLIP's `--log-every-n-steps` (0 counts as 1).
    pub log_every_n_steps: u64,
}

impl Report {
    /// From `--report_to` (OpenCLIP's `--report-to` values: `tensorboard`, `wandb`, `all`, or
    /// several joined by commas; empty or `none`: nothing) and DataComp's `--report_to_wandb`.
    pub fn parse(report_to: &str, report_to_wandb: bool, log_every_n_steps: u64) -> Result<Self> {
        let mut report = Self {
            log_every_n_steps,
            ..Self::default()
        };
        let mut wandb = report_to_wandb;
        for name in report_to.split(',').map(str::trim) {
            match name {
                "" | "none" => {}
                "tensorboard" => report.tensorboard = true,
                "wandb" => wandb = true,
                "all" => (report.tensorboard, wandb) = (true, true),
                other => bail!(
                    "--report_to {other:?}: use tensorboard, wandb, all or none (several joined by commas)"
                ),
            }
        }
        if wandb {
            bail!(
                "--report_to wandb / --report_to_wandb: W&B reporting is not implemented; use \
                 --report_to tensorboard (docs/train.md, \"Watching a run\")"
            );
        }
        Ok(report)
    }

    /// Whether OpenCLIP would log step `step` (counted from 1) of a run of `steps_per_epoch`
    /// steps per epoch: the first of every `log_every_n_steps` steps of an epoch, and its last.
    pub fn logs_step(&self, step: u64, steps_per_epoch: u64) -> bool {
        let i = (step.max(1) - 1) % steps_per_epoch.max(1);
        i % self.log_every_n_steps.max(1) == 0 || i + 1 == steps_per_epoch
    }
}

/// OpenCLIP's `train/` scalars of one `metrics.jsonl` record on `world` ranks (values the
/// record lacks are left out).
pub fn train_scalars(r: &MetricsRecord, world: usize) -> Vec<(&'static str, f64)> {
    let per_gpu = r.samples_per_s.map(|s| s / world.max(1) as f64);
    [
        ("train/loss", r.loss),
        ("train/lr", r.lr),
        ("train/scale", r.scale),
        ("train/samples_per_second", r.samples_per_s),
        ("train/samples_per_second_per_gpu", per_gpu),
        ("train/data_time", r.data_wait_s),
        ("train/batch_time", r.step_s),
    ]
    .into_iter()
    .filter_map(|(tag, v)| Some((tag, v?)))
    .collect()
}

/// OpenCLIP's `val/` scalars of a zero-shot evaluation.
pub fn zero_shot_scalars(r: &ZeroShotResult) -> [(&'static str, f64); 2] {
    [
        ("val/imagenet-zeroshot-val-top1", r.top1),
        ("val/imagenet-zeroshot-val-top5", r.top5),
    ]
}

/// A run's TensorBoard log for one invocation (the writer's).
#[derive(Debug)]
pub struct Board {
    events: EventWriter,
    report: Report,
    steps_per_epoch: u64,
    world: usize,
}

impl Board {
    /// Opens a new event file in `{run}/tensorboard/` for a run resuming after `steps_done`
    /// steps (0: a fresh start) on `world` ranks, when `report` asks for TensorBoard and this
    /// process is the writer. Its `SessionLog.START` at step `steps_done` makes TensorBoard drop
    /// any step a killed invocation logged after that; a zero-shot result of `results.jsonl`
    /// that the START hides (its epoch number is `steps_done` or more, with one step per
    /// epoch) is written again.
    pub fn open(
        run: &RunDir,
        report: &Report,
        steps_done: u64,
        steps_per_epoch: u64,
        world: usize,
    ) -> Result<Option<Self>> {
        if !(report.tensorboard && run.writer) {
            return Ok(None);
        }
        let mut events = EventWriter::create(&run.root.join(TENSORBOARD_DIR))?;
        let start = steps_done as i64;
        events.session_start(start, &format!("tic-train from step {steps_done}"))?;
        for (epoch, step, r) in ZeroShotResult::read_records(&run.checkpoints().join(RESULTS_FILE))?
        {
            if step <= steps_done && epoch >= steps_done {
                events.scalars(epoch as i64, &zero_shot_scalars(&r))?;
            }
        }
        run.log(&format!(
            "TensorBoard: {} (tensorboard --logdir {})",
            events.path().display(),
            run.root.join(TENSORBOARD_DIR).display()
        ));
        Ok(Some(Self {
            events,
            report: *report,
            steps_per_epoch,
            world,
        }))
    }

    /// Logs a step's `train/` scalars when OpenCLIP would ([`Report::logs_step`]), at its
    /// global step counted from 0; flushed.
    pub fn train_step(&mut self, r: &MetricsRecord) -> Result<()> {
        if !self.report.logs_step(r.step, self.steps_per_epoch) {
            return Ok(());
        }
        let step = r.step.saturating_sub(1) as i64;
        self.events.scalars(step, &train_scalars(r, self.world))
    }

    /// Logs a zero-shot evaluation after `epoch` epochs (at step `epoch`, as OpenCLIP).
    pub fn zero_shot(&mut self, epoch: u64, r: &ZeroShotResult) -> Result<()> {
        self.events.scalars(epoch as i64, &zero_shot_scalars(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_to_takes_openclip_names() {
        let r = Report::parse("tensorboard", false, 100).unwrap();
        assert!(r.tensorboard);
        assert!(!Report::parse("", false, 100).unwrap().tensorboard);
        assert!(!Report::parse("none", false, 100).unwrap().tensorboard);
        let e = Report::parse("tensorbored", false, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"tensorbored\""), "{e}");
        for (spec, flag) in [
            ("wandb", false),
            ("all", false),
            ("tensorboard,wandb", false),
            ("", true),
        ] {
            let e = Report::parse(spec, flag, 1).unwrap_err().to_string();
            assert!(e.contains("W&B"), "{spec}: {e}");
        }
    }

    /// OpenCLIP logs `i_accum % n == 0 or i_accum + 1 == batches per epoch`.
    #[test]
    fn steps_logged_as_openclip() {
        let r = Report {
            tensorboard: true,
            log_every_n_steps: 4,
        };
        let logged: Vec<u64> = (1..=20).filter(|&s| r.logs_step(s, 10)).collect();
        assert_eq!(logged, vec![1, 5, 9, 10, 11, 15, 19, 20]);
        let every = Report {
            log_every_n_steps: 0,
            ..r
        };
        assert!((1..=20).all(|s| every.logs_step(s, 10)));
    }

    #[test]
    fn scalars_are_openclips() {
        let r = MetricsRecord {
            step: 3,
            epoch: 0,
            loss: Some(2.0),
            lr: Some(1e-3),
            logit_scale: Some(2.0),
            scale: Some(2f64.exp()),
            grad_norm: Some(1.0),
            samples_per_s: Some(400.0),
            data_wait_s: None,
            step_s: Some(0.5),
            skipped: false,
        };
        let tags: Vec<_> = train_scalars(&r, 4).into_iter().collect();
        assert_eq!(
            tags,
            vec![
                ("train/loss", 2.0),
                ("train/lr", 1e-3),
                ("train/scale", 2f64.exp()),
                ("train/samples_per_second", 400.0),
                ("train/samples_per_second_per_gpu", 100.0),
                ("train/batch_time", 0.5),
            ]
        );
    }
}
