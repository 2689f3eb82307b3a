//! `--report_to`: the training curves a run reports besides `metrics.jsonl`, under OpenCLIP's
//! names, so that a run can be watched with `tensorboard --logdir RUN/tensorboard`, or uploaded
//! with `wandb sync RUN/wandb`, as an OpenCLIP run is.
//!
//! What OpenCLIP's `train_one_epoch` / `evaluate` log (v2.24.0), and what each is here:
//! - at every `--log_every_n_steps`-th step of an epoch (its first step included) and at its
//!   last step, at step `global_step` counted from 0 (`metrics.jsonl`'s `step` − 1):
//!   `train/loss` (`loss`, the global batch's), `train/lr` (`lr`), `train/scale` (`scale`,
//!   `exp(logit_scale)`), `train/samples_per_second` (`samples_per_s`),
//!   `train/samples_per_second_per_gpu` (`samples_per_s` / ranks), `train/data_time`
//!   (`data_wait_s`), `train/batch_time` (`step_s`);
//! - after each epoch with `--imagenet_val`, at step = epochs completed (TensorBoard) or the
//!   global step `epochs × steps per epoch` (W&B, with `epoch`):
//!   `val/imagenet-zeroshot-val-top1` and `-top5` (as in `checkpoints/results.jsonl`), and
//!   with `--val_data` OpenCLIP's contrastive `val/…` metrics ([`crate::val`]) at the same step.
//!
//! W&B rows also carry OpenCLIP's `step`; the W&B run's config is the run's parameters.
//!
//! Only the writer (rank 0) reports. Each invocation writes a new event file (the format is
//! [`crate::tensorboard`]'s) that starts with a `SessionLog.START` at the step it resumes from:
//! TensorBoard then drops what a killed invocation logged after its last checkpoint, so each
//! step appears once, with the value of the run that was kept. Each invocation also writes a
//! new W&B offline run ([`crate::wandb`]) with the same run id (`wandb sync` uploads them one
//! after the other into one run); it removes the steps it does again from the earlier
//! invocations' offline runs that are not uploaded yet.

use anyhow::{bail, Result};

use crate::args::TrainArgs;
use crate::records::MetricsRecord;
use crate::state::RunDir;
use crate::tensorboard::EventWriter;
use crate::val::ValMetrics;
use crate::wandb::{retain_rows, unsynced_runs, OfflineRun, RunInfo};
use crate::zeroshot::{ZeroShotResult, RESULTS_FILE};

/// The TensorBoard folder in the run folder (OpenCLIP's `{logs}/{name}/tensorboard`).
pub const TENSORBOARD_DIR: &str = "tensorboard";
/// The W&B folder in the run folder (its offline runs, as `wandb.init(dir=RUN)` would make).
pub const WANDB_DIR: &str = "wandb";

/// Where a run reports its training curves (`--report_to`, `--report_to_wandb`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    /// TensorBoard event files in `{run}/tensorboard/`.
    pub tensorboard: bool,
    /// A W&B offline run in `{run}/wandb/`.
    pub wandb: Option<WandbSettings>,
    /// Report every this many steps of an epoch (and at its first and last step), as
    /// OpenCLIP's `--log-every-n-steps` (0 counts as 1).
    pub log_every_n_steps: u64,
}

/// The W&B run's settings (OpenCLIP's `wandb.init` arguments).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WandbSettings {
    /// `--wandb_project_name`.
    pub project: String,
    /// `--wandb_notes`.
    pub notes: String,
    /// The run's config: its parameters (`params.yaml`), as OpenCLIP's `config=vars(args)`
    /// (set by [`crate::setup`] once they are resolved).
    pub config: serde_json::Value,
}

impl Report {
    /// From `--report_to` (OpenCLIP's `--report-to` values: `tensorboard`, `wandb`, `all`, or
    /// several joined by commas; empty or `none`: nothing) and DataComp's `--report_to_wandb`;
    /// a W&B run gets default [`WandbSettings`].
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
        report.wandb = wandb.then(WandbSettings::default);
        Ok(report)
    }

    /// The report a command line asks for (the W&B run's config still empty).
    pub fn from_args(args: &TrainArgs) -> Result<Self> {
        let mut report = Self::parse(
            &args.report_to,
            args.report_to_wandb,
            args.log_every_n_steps,
        )?;
        if let Some(w) = report.wandb.as_mut() {
            *w = WandbSettings {
                project: args.wandb_project_name.clone(),
                notes: args.wandb_notes.clone(),
                config: serde_json::Value::Null,
            };
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

/// A W&B row: `(key, JSON number)` pairs (non-finite values become `null`, left out).
type Row = Vec<(&'static str, serde_json::Value)>;

fn row(values: &[(&'static str, f64)], extra: (&'static str, u64)) -> Row {
    let mut out: Row = values.iter().map(|&(k, v)| (k, v.into())).collect();
    out.push((extra.0, extra.1.into()));
    out
}

/// This invocation's W&B offline run. A zero-shot row waits for the train row of its step
/// (the first step of the next epoch) and goes into the same history row, as the SDK merges
/// OpenCLIP's two `wandb.log` calls at one step (`wandb sync` numbers a second row at the same
/// step as the next step).
#[derive(Debug)]
struct WandbLog {
    run: OfflineRun,
    pending: Option<(u64, Row)>,
}

impl WandbLog {
    /// Writes the row at `step`, with the waiting zero-shot row when it has the same step.
    fn row(&mut self, step: u64, mut values: Row) -> Result<()> {
        match self.pending.take() {
            Some((s, mut val)) if s == step => {
                val.append(&mut values);
                values = val;
            }
            Some((s, val)) => self.run.log(s, &val)?,
            None => {}
        }
        self.run.log(step, &values)
    }

    /// Keeps `values` for the row at `step` (see [`WandbLog::row`]); joined to a waiting row
    /// of the same step (zero-shot and `--val_data` results of one epoch: one `wandb.log` in
    /// OpenCLIP), keys it already has left out.
    fn defer(&mut self, step: u64, mut values: Row) -> Result<()> {
        match self.pending.take() {
            Some((s, mut val)) if s == step => {
                values.retain(|(k, _)| !val.iter().any(|(have, _)| have == k));
                val.append(&mut values);
                values = val;
            }
            Some((s, val)) => self.run.log(s, &val)?,
            None => {}
        }
        self.pending = Some((step, values));
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        if let Some((s, val)) = self.pending.take() {
            self.run.log(s, &val)?;
        }
        self.run.finish()
    }
}

/// A run's reports for one invocation (the writer's): a TensorBoard event file and a W&B
/// offline run, as asked.
#[derive(Debug)]
pub struct Reporter {
    events: Option<EventWriter>,
    wandb: Option<WandbLog>,
    log_every_n_steps: u64,
    steps_per_epoch: u64,
    world: usize,
}

impl Reporter {
    /// Opens this invocation's reports for a run resuming after `steps_done` steps (0: a fresh
    /// start) on `world` ranks, when `report` asks for any and this process is the writer.
    ///
    /// TensorBoard: a new event file in `{run}/tensorboard/` whose `SessionLog.START` at step
    /// `steps_done` makes TensorBoard drop any step a killed invocation logged after that; a
    /// zero-shot result of `results.jsonl` that the START hides (its epoch number is
    /// `steps_done` or more, with one step per epoch) is written again. W&B: a new offline run
    /// in `{run}/wandb/` with the run folder's name as id and name (`wandb sync` joins the
    /// invocations); earlier invocations' offline runs not yet uploaded lose their rows at or
    /// after `steps_done`, and the zero-shot result at step `steps_done` is logged again.
    pub fn open(
        run: &RunDir,
        report: &Report,
        steps_done: u64,
        steps_per_epoch: u64,
        world: usize,
    ) -> Result<Option<Self>> {
        if !(run.writer && (report.tensorboard || report.wandb.is_some())) {
            return Ok(None);
        }
        let results_file = run.checkpoints().join(RESULTS_FILE);
        let results = ZeroShotResult::read_records(&results_file)?
            .into_iter()
            .map(|(epoch, step, r)| (epoch, step, zero_shot_scalars(&r).to_vec()))
            .chain(
                ValMetrics::read_records(&results_file)?
                    .into_iter()
                    .map(|(epoch, step, m)| (epoch, step, m.scalars(epoch))),
            )
            .collect::<Vec<_>>();
        let mut events = None;
        if report.tensorboard {
            let mut e = open_events(run, steps_done)?;
            for (epoch, step, r) in &results {
                if *step <= steps_done && *epoch >= steps_done {
                    e.scalars(*epoch as i64, r)?;
                }
            }
            events = Some(e);
        }
        let mut wandb = None;
        if let Some(w) = &report.wandb {
            let mut log = WandbLog {
                run: open_wandb(run, w, steps_done)?,
                pending: None,
            };
            for (epoch, step, r) in &results {
                if *step <= steps_done && epoch * steps_per_epoch >= steps_done {
                    let values = row(r, ("epoch", *epoch));
                    log.defer(epoch * steps_per_epoch, values)?;
                }
            }
            wandb = Some(log);
        }
        Ok(Some(Self {
            events,
            wandb,
            log_every_n_steps: report.log_every_n_steps,
            steps_per_epoch,
            world,
        }))
    }

    /// Logs a step's `train/` scalars when OpenCLIP would ([`Report::logs_step`]), at its
    /// global step counted from 0 (W&B rows also get OpenCLIP's `step`); flushed.
    pub fn train_step(&mut self, r: &MetricsRecord) -> Result<()> {
        let when = Report {
            log_every_n_steps: self.log_every_n_steps,
            ..Report::default()
        };
        if !when.logs_step(r.step, self.steps_per_epoch) {
            return Ok(());
        }
        let step = r.step.saturating_sub(1);
        let values = train_scalars(r, self.world);
        if let Some(e) = self.events.as_mut() {
            e.scalars(step as i64, &values)?;
        }
        if let Some(w) = self.wandb.as_mut() {
            w.row(step, row(&values, ("step", step)))?;
        }
        Ok(())
    }

    /// Logs a zero-shot evaluation after `epoch` epochs: in TensorBoard at step `epoch`, in
    /// W&B at the global step `epoch × steps per epoch` with OpenCLIP's `epoch` (as OpenCLIP).
    pub fn zero_shot(&mut self, epoch: u64, r: &ZeroShotResult) -> Result<()> {
        let values = zero_shot_scalars(r);
        if let Some(e) = self.events.as_mut() {
            e.scalars(epoch as i64, &values)?;
        }
        if let Some(w) = self.wandb.as_mut() {
            w.defer(epoch * self.steps_per_epoch, row(&values, ("epoch", epoch)))?;
        }
        Ok(())
    }

    /// Logs a `--val_data` evaluation after `epoch` epochs, where [`Reporter::zero_shot`] logs
    /// (OpenCLIP logs both in one `evaluate`).
    pub fn val(&mut self, epoch: u64, m: &ValMetrics) -> Result<()> {
        let values = m.scalars(epoch);
        if let Some(e) = self.events.as_mut() {
            e.scalars(epoch as i64, &values)?;
        }
        if let Some(w) = self.wandb.as_mut() {
            w.defer(epoch * self.steps_per_epoch, row(&values, ("epoch", epoch)))?;
        }
        Ok(())
    }

    /// Ends the invocation's reports (the W&B run's last row and exit record: a run without
    /// one was cut).
    pub fn finish(self) -> Result<()> {
        match self.wandb {
            Some(w) => w.finish(),
            None => Ok(()),
        }
    }
}

/// This invocation's TensorBoard event file, started at `steps_done`.
fn open_events(run: &RunDir, steps_done: u64) -> Result<EventWriter> {
    let mut events = EventWriter::create(&run.root.join(TENSORBOARD_DIR))?;
    events.session_start(
        steps_done as i64,
        &format!("tic-train from step {steps_done}"),
    )?;
    run.log(&format!(
        "TensorBoard: {} (tensorboard --logdir {})",
        events.path().display(),
        run.root.join(TENSORBOARD_DIR).display()
    ));
    Ok(events)
}

/// This invocation's W&B offline run. Earlier invocations' offline runs not yet uploaded lose
/// their rows at or after `steps_done` (logged by a killed invocation after its last
/// checkpoint; this one logs them again).
fn open_wandb(run: &RunDir, w: &WandbSettings, steps_done: u64) -> Result<OfflineRun> {
    let name = run
        .root
        .file_name()
        .map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned());
    let info = RunInfo {
        id: crate::wandb::run_id(&name),
        project: w.project.clone(),
        name,
        notes: w.notes.clone(),
        config: w.config.clone(),
    };
    let dir = run.root.join(WANDB_DIR);
    for f in unsynced_runs(&dir, &info.id)? {
        let dropped = retain_rows(&f, |step, _| step < steps_done as i64)?;
        if dropped > 0 {
            run.log(&format!(
                "W&B: dropped {dropped} record(s) at or after step {steps_done} from {}",
                f.display()
            ));
        }
    }
    let offline = OfflineRun::create(&dir, &info)?;
    run.log(&format!(
        "W&B offline run: {} (upload: wandb sync {})",
        offline.path().display(),
        dir.display()
    ));
    Ok(offline)
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
        for (spec, flag, tb) in [
            ("wandb", false, false),
            ("all", false, true),
            ("tensorboard, wandb", false, true),
            ("", true, false),
        ] {
            let r = Report::parse(spec, flag, 1).unwrap();
            assert_eq!((r.tensorboard, r.wandb.is_some()), (tb, true), "{spec}");
        }
    }

    /// OpenCLIP logs `i_accum % n == 0 or i_accum + 1 == batches per epoch`.
    #[test]
    fn steps_logged_as_openclip() {
        let r = Report {
            tensorboard: true,
            log_every_n_steps: 4,
            ..Report::default()
        };
        let logged: Vec<u64> = (1..=20).filter(|&s| r.logs_step(s, 10)).collect();
        assert_eq!(logged, vec![1, 5, 9, 10, 11, 15, 19, 20]);
        let every = Report {
            log_every_n_steps: 0,
            ..r.clone()
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
