//! The training loop: OpenCLIP's `train_one_epoch` (cosine schedule, clipping, AdamW,
//! logit-scale clamp, non-finite steps skipped) around the data-parallel step of [`crate::step`],
//! with DataComp's output layout ([`crate::state`]) and exact, atomic resumption.
//!
//! One process is the W = 1 case of the same loop. Under W ranks every rank runs the same
//! number of steps on its slice of each global batch, holds identical weights and optimizer
//! state (gradients are averaged before the update; the weights are broadcast from rank 0 at
//! the start), and rank 0 alone writes the run folder.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};
use tic_dist::{Comm, Solo};
use tic_model::checkpoint::{load_trainable, StateDict};
use tic_model::init::{new_trainable, param_specs};
use tic_model::{Clip, ClipConfig};

use crate::loader::{Batch, Loader, LoaderOptions, ShardStore};
use crate::optim::{clamp_logit_scale, clip_grad_norm, grad_norm, AdamW, AdamWConfig};
use crate::plan::{Plan, Position, Sampling};
use crate::preempt::{Preempted, StopSignal};
use crate::records::MetricsRecord;
pub use crate::records::TrainState;
use crate::report::{Report, Reporter};
use crate::schedule::{cosine_lr, StepCounts};
use crate::state::Checkpoint;
pub use crate::state::{read_state, RunDir};
use crate::step::Objective;

/// Numeric precision of the forward/backward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in f32.
    Fp32,
    /// bf16 compute with f32 master weights and optimizer state (mixed precision).
    Bf16,
}

/// Everything the loop needs besides data and weights.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Model architecture.
    pub model: ClipConfig,
    /// Global batch size (per optimizer step, all accumulation rounds together).
    pub global_batch: u64,
    /// Peak learning rate.
    pub lr: f64,
    /// Warmup steps.
    pub warmup: u64,
    /// Samples seen in the whole run.
    pub train_num_samples: u64,
    /// Number of "epochs" = checkpoints (DataComp `--num_checkpoints`).
    pub num_checkpoints: u64,
    /// Loader threads (also rounds the batch count, as OpenCLIP).
    pub workers: usize,
    /// Gradient accumulation rounds.
    pub accum_freq: u64,
    /// Seed (model init and data).
    pub seed: u64,
    /// Clip the gradient norm to this value.
    pub grad_clip_norm: Option<f64>,
    /// Compute precision.
    pub precision: Precision,
    /// Keep `epoch_N` every this many epochs (0: only the last), as OpenCLIP.
    pub save_frequency: u64,
    /// Also write a resumable state every this many steps (0: at epoch ends only).
    pub checkpoint_every: u64,
    /// AdamW hyper-parameters.
    pub adamw: AdamWConfig,
    /// Weight of the LwF distillation term (used when a teacher is given).
    pub distill_weight: f64,
    /// Weight patching: after training, `θ = (1−α)·θ_prev + α·θ`, with (θ_prev, α).
    pub patch_alpha: f64,
    /// Batches prepared ahead by the loader.
    pub prefetch: usize,
    /// Shards mixed per shuffle block.
    pub shards_per_block: usize,
    /// Stop (without saving) after this many optimizer steps of this invocation: simulates a
    /// kill in tests.
    pub stop_after_steps: Option<u64>,
    /// No progress bar.
    pub quiet: bool,
    /// Give up after this many skipped (non-finite) steps.
    pub max_nonfinite: u64,
    /// Zero-shot classification set evaluated at epoch ends (`--imagenet_val`).
    pub imagenet_val: Option<crate::zeroshot::ZeroShotVal>,
    /// Evaluate `imagenet_val` every this many epochs and after the last (0: never).
    pub zeroshot_frequency: u64,
    /// Held-out shards of OpenCLIP's contrastive validation (`--val_data`).
    pub val: Option<crate::val::ContrastiveVal>,
    /// Evaluate `val` every this many epochs and after the last (0: never).
    pub val_frequency: u64,
    /// Delete `epoch_{N-1}` after saving `epoch_N` (`--delete_previous_checkpoint`).
    pub delete_previous_checkpoint: bool,
    /// Backpropagate through the feature all-gather (OpenCLIP `--gather-with-grad`; always
    /// on in DataComp). Only matters with several ranks.
    pub gather_with_grad: bool,
    /// SIGTERM / SIGINT: when any rank has it set before a step, every rank saves the
    /// resumable state and the run stops ([`crate::preempt`]).
    pub stop: StopSignal,
    /// Gradient checkpointing: keep only each residual block's input during the forward pass
    /// and recompute the block during the backward pass (DataComp's `--grad-checkpointing`).
    pub grad_checkpointing: bool,
    /// Where the training curves are reported besides `metrics.jsonl` (`--report_to`).
    pub report: Report,
}

impl TrainOptions {
    /// The step counts of this run on `world` ranks (the per-rank batch is
    /// `global_batch // (world·accum_freq)`, as DataComp's train.py).
    pub fn counts_for(&self, world: usize) -> StepCounts {
        StepCounts::new(
            self.train_num_samples,
            self.global_batch,
            self.num_checkpoints,
            self.workers as u64,
            self.accum_freq,
            world as u64,
        )
    }

    /// The settings a resumed run must share with the saved one.
    pub fn fingerprint(&self) -> serde_json::Value {
        serde_json::json!({
            "model": self.model,
            "global_batch": self.global_batch,
            "lr": self.lr,
            "warmup": self.warmup,
            "train_num_samples": self.train_num_samples,
            "num_checkpoints": self.num_checkpoints,
            "workers": self.workers,
            "accum_freq": self.accum_freq,
            "seed": self.seed,
            "grad_clip_norm": self.grad_clip_norm,
        })
    }
}

/// Where the weights come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Init {
    /// OpenCLIP random init with the run's seed.
    Scratch,
    /// Weights only from a checkpoint (safetensors or OpenCLIP `.pt`): `--new_run` semantics.
    Weights(PathBuf),
    /// Exact resumption from a `train_state.json`.
    Resume(PathBuf),
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// Optimizer steps done in total (including before a resume).
    pub steps: u64,
    /// Total steps of the run.
    pub total_steps: u64,
    /// True when the run reached its last step.
    pub finished: bool,
    /// Loss of the first step of this invocation.
    pub first_loss: Option<f64>,
    /// Mean loss of the last 10 steps of this invocation.
    pub last_loss: Option<f64>,
    /// Mean samples/s (global) over this invocation's steps.
    pub samples_per_s: f64,
    /// Samples drawn per input (`::` entry) in this invocation, over all ranks.
    pub samples_per_input: Vec<u64>,
    /// Steps skipped because of non-finite values.
    pub skipped_steps: u64,
    /// Samples per optimizer step (global batch as run).
    pub batch: u64,
    /// Set when a signal stopped the run before its last step (its state is saved).
    pub preempted: Option<Preempted>,
}

fn named_vars(cfg: &ClipConfig, vm: &VarMap) -> Result<Vec<(String, Var)>> {
    let data = vm.data().lock().expect("varmap lock");
    param_specs(cfg)
        .into_iter()
        .map(|s| {
            let v = data
                .get(&s.name)
                .with_context(|| format!("missing parameter `{}`", s.name))?
                .clone();
            Ok((s.name, v))
        })
        .collect()
}

/// The model for a forward pass from the trainable (f32 master) variables, in `precision`.
pub fn build_model(
    cfg: &ClipConfig,
    vars: &[(String, Var)],
    precision: Precision,
    dev: &Device,
) -> Result<Clip> {
    let dtype = match precision {
        Precision::Fp32 => DType::F32,
        Precision::Bf16 => DType::BF16,
    };
    let map: HashMap<String, Tensor> = vars
        .iter()
        .map(|(n, v)| Ok((n.clone(), v.as_tensor().to_dtype(dtype)?)))
        .collect::<candle_core::Result<_>>()?;
    Ok(Clip::new(cfg, VarBuilder::from_tensors(map, dtype, dev))?)
}

fn to_device(b: &Batch, dev: &Device) -> Result<(Tensor, Tensor)> {
    let s = b.image_size;
    let imgs = Tensor::from_slice(&b.images, (b.size, 3, s, s), dev)?;
    let toks = Tensor::from_slice(&b.tokens, (b.size, b.tokens.len() / b.size), dev)?;
    Ok((imgs, toks))
}

/// The trainable state of a run on one rank: weights, optimizer, progress.
struct Session {
    vm: VarMap,
    vars: Vec<(String, Var)>,
    opt: AdamW,
    step: u64,
    position: Position,
    skipped: u64,
    /// The step of the resumable state on disk (`None`: none saved by this run yet).
    saved_step: Option<u64>,
}

impl Session {
    /// Weights from `init` (scratch, a checkpoint's weights, or an exact resume), identical on
    /// every rank: rank 0's are broadcast.
    fn start(
        comm: &dyn Comm,
        opts: &TrainOptions,
        sampling: Sampling,
        run: &RunDir,
        init: &Init,
        device: &Device,
    ) -> Result<Self> {
        let cfg = &opts.model;
        let vm = match init {
            Init::Scratch | Init::Resume(_) => new_trainable(cfg, opts.seed, DType::F32, device)?.0,
            Init::Weights(p) => {
                run.log(&format!(
                    "initialising weights from {} (new run: fresh optimizer, schedule and step)",
                    p.display()
                ));
                load_trainable(cfg, p, DType::F32, device)?.0
            }
        };
        let vars = named_vars(cfg, &vm)?;
        let mut s = Self {
            opt: AdamW::new(vars.clone(), opts.adamw),
            vm,
            vars,
            step: 0,
            position: Position::default(),
            skipped: 0,
            saved_step: None,
        };
        if let Init::Resume(json) = init {
            s.resume(comm, opts, sampling, run, json, device)?;
        }
        s.broadcast_weights(comm)?;
        Ok(s)
    }

    fn resume(
        &mut self,
        comm: &dyn Comm,
        opts: &TrainOptions,
        sampling: Sampling,
        run: &RunDir,
        json: &std::path::Path,
        device: &Device,
    ) -> Result<()> {
        let (st, t) = read_state(json)?;
        if st.fingerprint != opts.fingerprint() {
            bail!(
                "{}: the run was started with other settings ({}); now {}",
                json.display(),
                st.fingerprint,
                opts.fingerprint()
            );
        }
        for (n, v) in &self.vars {
            let x = t
                .get(&format!("model/{n}"))
                .with_context(|| format!("{}: no tensor model/{n}", json.display()))?;
            v.set(&x.to_dtype(DType::F32)?.to_device(device)?)?;
        }
        self.opt.load_state(&t, &json.display().to_string())?;
        self.step = st.step;
        self.saved_step = Some(st.step);
        self.skipped = st.skipped_steps;
        let world = comm.size();
        self.position = if st.data_positions.len() == world {
            st.data_positions[comm.rank()]
        } else if sampling == Sampling::WithoutReplacement || world == 1 {
            st.data_position
        } else {
            bail!(
                "{}: saved by {} rank(s) drawing their own resampled streams; resume with the same \
                 number of ranks (now {world})",
                json.display(),
                st.data_positions.len().max(1)
            );
        };
        run.log(&format!(
            "resuming at step {}/{} from {}",
            st.step,
            st.total_steps,
            json.display()
        ));
        Ok(())
    }

    /// Rank 0's weights on every rank (as DDP does when it wraps the model).
    fn broadcast_weights(&self, comm: &dyn Comm) -> Result<()> {
        if comm.size() == 1 {
            return Ok(());
        }
        for (_, v) in &self.vars {
            let mut buf = v.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            comm.broadcast_f32(0, &mut buf)?;
            v.set(&Tensor::from_vec(buf, v.shape(), v.device())?)?;
        }
        Ok(())
    }

    /// Clips, checks and applies the synchronised gradients; returns (gradient norm, applied).
    fn apply(
        &mut self,
        opts: &TrainOptions,
        mut grads: Vec<Option<Tensor>>,
        loss: f64,
        lr: f64,
        logit_scale: &Var,
        run: &RunDir,
    ) -> Result<(f64, bool)> {
        let norm = match opts.grad_clip_norm {
            Some(m) => clip_grad_norm(&mut grads, m)?,
            None => grad_norm(&grads)?,
        };
        let finite = loss.is_finite() && norm.is_finite();
        if finite {
            self.opt.step(&grads, lr)?;
            clamp_logit_scale(logit_scale)?;
            return Ok((norm, true));
        }
        self.skipped += 1;
        run.log(&format!(
            "step {}: non-finite loss ({loss}) or gradient norm ({norm}); step skipped ({} so far)",
            self.step + 1,
            self.skipped
        ));
        if self.skipped > opts.max_nonfinite {
            bail!(
                "stopping at step {}: {} steps had non-finite loss or gradients",
                self.step + 1,
                self.skipped
            );
        }
        Ok((norm, false))
    }

    /// Saves the resumable state after the current step (a collective: every rank's data
    /// position is gathered; rank 0 writes). `epoch_N` is kept at the last step and every
    /// `save_frequency` epochs.
    fn save(
        &mut self,
        comm: &dyn Comm,
        opts: &TrainOptions,
        counts: &StepCounts,
        run: &RunDir,
    ) -> Result<()> {
        let (step, total) = (self.step, counts.total_steps);
        let epoch = step / counts.steps_per_epoch;
        let end_of_epoch = step % counts.steps_per_epoch == 0;
        let positions = self.positions(comm)?;
        Checkpoint {
            config: &opts.model,
            vars: &self.vm,
            opt: &self.opt,
            state: TrainState {
                step,
                epoch,
                total_steps: total,
                data_position: positions[0],
                data_positions: positions,
                tensors: String::new(),
                skipped_steps: self.skipped,
                fingerprint: opts.fingerprint(),
            },
            keep_epoch: end_of_epoch
                && (step == total || (opts.save_frequency > 0 && epoch % opts.save_frequency == 0)),
            delete_previous: opts.delete_previous_checkpoint,
        }
        .save(run)?;
        self.saved_step = Some(step);
        Ok(())
    }

    /// Stops at a signal: saves the state of the last finished step unless it is already on
    /// disk (a collective), and says so in `out.log`.
    fn preempt(
        &mut self,
        comm: &dyn Comm,
        opts: &TrainOptions,
        counts: &StepCounts,
        run: &RunDir,
    ) -> Result<Preempted> {
        if self.saved_step != Some(self.step) {
            self.save(comm, opts, counts, run)?;
        }
        let signal = opts.stop.received();
        run.log(&format!(
            "preempted at step {}/{} ({}): resumable state saved in {}; rerun the same command to resume (exit status {})",
            self.step,
            counts.total_steps,
            signal.unwrap_or("a stop request"),
            run.state_json().display(),
            crate::preempt::EXIT_PREEMPTED
        ));
        Ok(Preempted {
            step: self.step,
            total_steps: counts.total_steps,
            signal,
        })
    }

    /// Every rank's loader position, in rank order (a collective).
    fn positions(&self, comm: &dyn Comm) -> Result<Vec<Position>> {
        let p = self.position;
        let all = comm.all_gather_u64(&[p.block, p.offset, p.consumed])?;
        Ok(all
            .chunks_exact(3)
            .map(|c| Position {
                block: c[0],
                offset: c[1],
                consumed: c[2],
            })
            .collect())
    }
}

/// Trains (or resumes) a run in one process. `teacher` enables LwF; `patch_from` (the
/// previous model's weights) enables weight patching at the end.
#[allow(clippy::too_many_arguments)]
pub fn train(
    opts: &TrainOptions,
    plan: Arc<Plan>,
    store: ShardStore,
    run: &RunDir,
    init: &Init,
    teacher: Option<&Clip>,
    patch_from: Option<&StateDict>,
    device: &Device,
) -> Result<TrainSummary> {
    train_distributed(
        &Solo, opts, plan, store, run, init, teacher, patch_from, device,
    )
}

/// [`train`] as one rank of `comm`: every rank calls it with the same arguments (the plan,
/// the init); each trains on its slice of every global batch.
#[allow(clippy::too_many_arguments)]
pub fn train_distributed(
    comm: &dyn Comm,
    opts: &TrainOptions,
    plan: Arc<Plan>,
    store: ShardStore,
    run: &RunDir,
    init: &Init,
    teacher: Option<&Clip>,
    patch_from: Option<&StateDict>,
    device: &Device,
) -> Result<TrainSummary> {
    let counts = opts.counts_for(comm.size());
    check_counts(comm, opts, &counts)?;
    let total = counts.total_steps;
    run.remove_stale_temps()?;
    let mut s = Session::start(comm, opts, plan.sampling(), run, init, device)?;
    let mut logs = Logs::open(comm, opts, run, s.step, &counts)?;
    let mut model = build_model(&opts.model, &s.vars, opts.precision, device)?;
    let logit_var = logit_scale_var(&s.vars)?;
    let store_scratch = store.scratch();
    let mut loader = start_loader(comm, opts, &counts, plan.clone(), store, s.position)?;
    let objective = Objective {
        comm,
        gather_with_grad: opts.gather_with_grad,
        grad_checkpointing: opts.grad_checkpointing,
        distill_weight: opts.distill_weight,
    };
    let pb = tic_shards::cli::progress(total, "steps", opts.quiet || comm.rank() != 0);
    pb.set_position(s.step);
    pb.set_message("train");
    let mut tally = Tally::new(&plan, counts.loader_batch * opts.accum_freq.max(1));
    let ctx = StepContext {
        comm,
        opts,
        counts,
        run,
        device,
        patch_from,
        logit_var,
        pb,
        scratch: store_scratch.clone(),
    };
    let mut preempted = None;
    while s.step < total {
        if opts.stop_after_steps.is_some_and(|n| tally.steps >= n) {
            break;
        }
        let ts = Instant::now();
        let lr = cosine_lr(opts.lr, opts.warmup, total, s.step);
        let fetched = next_batches(&mut loader, opts)?;
        // Every rank votes before each step; all stop at the same step when any was signalled.
        if opts.stop.agreed(comm)? {
            preempted = Some(s.preempt(comm, opts, &ctx.counts, run)?);
            break;
        }
        let batches = fetched.context("no batch although no stop was agreed")?;
        tally.count_inputs(&batches);
        let data_s = ts.elapsed().as_secs_f64();
        s.position = batches.last().expect("accum >= 1").end;
        if opts.precision == Precision::Bf16 {
            model = build_model(&opts.model, &s.vars, opts.precision, device)?;
        }
        let inputs: Vec<(Tensor, Tensor)> = batches
            .iter()
            .map(|b| to_device(b, device))
            .collect::<Result<_>>()?;
        let g = objective.gradients(&model, teacher, &inputs, &s.opt)?;
        let (norm, applied) = s.apply(opts, g.grads, g.loss, lr, &ctx.logit_var, run)?;
        s.step += 1;
        let step = StepOutcome {
            loss: g.loss,
            lr,
            norm,
            applied,
            started: ts,
            data_s,
        };
        ctx.after_step(&mut s, &step, &mut tally, &mut logs)?;
    }
    ctx.pb.finish_and_clear();
    if let Some(f) = logs.metrics.as_mut() {
        f.flush()?;
    }
    if let Some(r) = logs.reports.take() {
        r.finish()?;
    }
    drop(loader);
    log_scratch(comm, &store_scratch, run)?;
    let mut summary = tally.summary(comm, &s, total)?;
    summary.preempted = preempted;
    Ok(summary)
}

/// The trainable `logit_scale` among the model's variables.
fn logit_scale_var(vars: &[(String, Var)]) -> Result<Var> {
    vars.iter()
        .find(|(n, _)| n == "logit_scale")
        .map(|(_, v)| v.clone())
        .context("no logit_scale parameter")
}

/// The batches of the next step, or `None` when this process was asked to stop while waiting
/// for them (or their loading failed after the request: a signal to the process group also
/// ends a `pipe:` command).
fn next_batches(loader: &mut Loader, opts: &TrainOptions) -> Result<Option<Vec<Batch>>> {
    let mut out = Vec::with_capacity(opts.accum_freq.max(1) as usize);
    for _ in 0..opts.accum_freq.max(1) {
        match loader.next_batch_unless(&opts.stop) {
            Ok(Some(b)) => out.push(b),
            Ok(None) => return Ok(None),
            Err(e) if opts.stop.requested() => {
                tracing::debug!("loading stopped by the stop request: {e:#}");
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Some(out))
}

/// With streamed shards: every rank's scratch high-water mark in `out.log` (a collective).
fn log_scratch(
    comm: &dyn Comm,
    scratch: &Option<Arc<crate::loader::ShardScratch>>,
    run: &RunDir,
) -> Result<()> {
    let Some(sc) = scratch else {
        return Ok(());
    };
    let marks = comm.all_gather_u64(&[sc.high_water()])?;
    run.log(&format!(
        "{} {marks:?}; limit {}",
        crate::scratch::HIGH_WATER_LOG,
        sc.limit_description()
    ));
    Ok(())
}

/// Refuses a run without a single optimizer step.
fn check_counts(comm: &dyn Comm, opts: &TrainOptions, counts: &StepCounts) -> Result<()> {
    if counts.steps_per_epoch == 0 || counts.loader_batch == 0 {
        bail!(
            "no optimizer step: train_num_samples {} / num_checkpoints {} is less than one batch of {} \
             (or the batch is smaller than {} ranks × {} accumulation rounds)",
            opts.train_num_samples,
            opts.num_checkpoints,
            opts.global_batch,
            comm.size(),
            opts.accum_freq
        );
    }
    Ok(())
}

/// One optimizer step, as done: what its records say.
struct StepOutcome {
    loss: f64,
    lr: f64,
    /// Gradient norm before clipping.
    norm: f64,
    /// False when the step was skipped (non-finite loss or gradients).
    applied: bool,
    /// When the step began.
    started: Instant,
    /// Seconds spent waiting for the batches.
    data_s: f64,
}

/// The writer's per-step logs: `metrics.jsonl` and the `--report_to` reports (both `None` on
/// other ranks).
struct Logs {
    metrics: Option<std::fs::File>,
    reports: Option<Reporter>,
}

impl Logs {
    /// Opens `metrics.jsonl` (from `step` on) and the `--report_to` reporters.
    fn open(
        comm: &dyn Comm,
        opts: &TrainOptions,
        run: &RunDir,
        step: u64,
        counts: &StepCounts,
    ) -> Result<Self> {
        Ok(Self {
            metrics: run.open_metrics(step)?,
            reports: Reporter::open(run, &opts.report, step, counts.steps_per_epoch, comm.size())?,
        })
    }

    /// Appends the step's record to `metrics.jsonl` and reports it.
    fn step(&mut self, record: &MetricsRecord) -> Result<()> {
        if let Some(f) = self.metrics.as_mut() {
            writeln!(f, "{}", record.to_line())?;
        }
        if let Some(r) = self.reports.as_mut() {
            r.train_step(record)?;
        }
        Ok(())
    }
}

/// What the loop needs after every step besides the session.
struct StepContext<'a> {
    comm: &'a dyn Comm,
    opts: &'a TrainOptions,
    counts: StepCounts,
    run: &'a RunDir,
    device: &'a Device,
    patch_from: Option<&'a StateDict>,
    logit_var: Var,
    pb: indicatif::ProgressBar,
    scratch: Option<Arc<crate::loader::ShardScratch>>,
}

impl StepContext<'_> {
    /// After step `s.step`: its `metrics.jsonl` line and report (the writer), progress, weight patching at
    /// the last step, checkpoints, and at an epoch end the log line and `--imagenet_val`.
    fn after_step(
        &self,
        s: &mut Session,
        out: &StepOutcome,
        tally: &mut Tally,
        logs: &mut Logs,
    ) -> Result<()> {
        let (opts, counts, run) = (self.opts, &self.counts, self.run);
        let (step, total) = (s.step, counts.total_steps);
        let ls: f32 = self.logit_var.as_tensor().to_scalar()?;
        if run.writer {
            let dt = out.started.elapsed().as_secs_f64();
            let record = MetricsRecord {
                step,
                epoch: (step - 1) / counts.steps_per_epoch,
                loss: Some(out.loss),
                lr: Some(out.lr),
                logit_scale: Some(ls as f64),
                scale: Some((ls as f64).exp()),
                grad_norm: Some(out.norm),
                samples_per_s: Some(tally.batch as f64 / dt),
                data_wait_s: Some(out.data_s),
                step_s: Some(dt),
                skipped: !out.applied,
            };
            logs.step(&record)?;
        }
        tally.record(out.loss);
        self.pb.set_position(step);
        self.pb.set_message(match &self.scratch {
            Some(sc) => format!("loss {:.4} · scratch {}", out.loss, sc.use_description()),
            None => format!("loss {:.4}", out.loss),
        });
        if step == total {
            if let Some(prev) = self.patch_from {
                patch_weights(&s.vars, prev, opts.patch_alpha)?;
                run.log(&format!(
                    "patched: θ = {:.3}·θ_prev + {:.3}·θ",
                    1.0 - opts.patch_alpha,
                    opts.patch_alpha
                ));
            }
        }
        let end_of_epoch = step % counts.steps_per_epoch == 0;
        if end_of_epoch || (opts.checkpoint_every > 0 && step % opts.checkpoint_every == 0) {
            s.save(self.comm, opts, counts, run)?;
        }
        if end_of_epoch {
            let epoch = step / counts.steps_per_epoch;
            run.log(&format!(
                "epoch {epoch} done at step {step}/{total}: loss {:.4}, lr {:.3e}, logit_scale {ls:.4}",
                out.loss, out.lr
            ));
            if run.writer {
                self.epoch_evals(s, epoch, step, logs)?;
            }
        }
        Ok(())
    }

    /// The writer's evaluations after `epoch` (at `step`), as OpenCLIP's `evaluate`: the
    /// `--imagenet_val` zero-shot and the `--val_data` contrastive validation, each when its
    /// frequency picks the epoch; results in `results.jsonl`, `out.log` and the reports.
    fn epoch_evals(&self, s: &Session, epoch: u64, step: u64, logs: &mut Logs) -> Result<()> {
        let (opts, run, epochs) = (self.opts, self.run, self.counts.epochs);
        let zero_shot = opts
            .imagenet_val
            .as_ref()
            .filter(|_| crate::val::due(opts.zeroshot_frequency, epoch, epochs));
        let val = opts
            .val
            .as_ref()
            .filter(|_| crate::val::due(opts.val_frequency, epoch, epochs));
        if zero_shot.is_none() && val.is_none() {
            return Ok(());
        }
        let model = build_model(&opts.model, &s.vars, Precision::Fp32, self.device)?;
        if let Some(zs) = zero_shot {
            let r = self
                .pb
                .suspend(|| zs.evaluate(model.clone(), self.device))?;
            run.append_checkpoint_line(crate::zeroshot::RESULTS_FILE, &r.record(epoch, step))?;
            run.log(&r.log_line(epoch));
            if let Some(reports) = logs.reports.as_mut() {
                reports.zero_shot(epoch, &r)?;
            }
        }
        if let Some(v) = val {
            let m = self.pb.suspend(|| v.evaluate(&model, self.device))?;
            run.append_checkpoint_line(crate::zeroshot::RESULTS_FILE, &m.record(epoch, step))?;
            run.log(&m.log_line(epoch));
            if let Some(reports) = logs.reports.as_mut() {
                reports.val(epoch, &m)?;
            }
        }
        Ok(())
    }
}

/// The loader of this rank. Resampled streams are drawn per rank (the plan's seed is the
/// rank's, augmentation seeded by seed + rank); the stream without replacement is global and
/// cut into rank slices.
fn start_loader(
    comm: &dyn Comm,
    opts: &TrainOptions,
    counts: &StepCounts,
    plan: Arc<Plan>,
    store: ShardStore,
    position: Position,
) -> Result<Loader> {
    let (rank, world) = (comm.rank(), comm.size());
    let (slice_rank, slices) = match plan.sampling() {
        Sampling::WithoutReplacement => (rank, world),
        Sampling::Resampled => (0, 1),
    };
    Loader::start(
        plan,
        store,
        LoaderOptions {
            batch_size: (counts.loader_batch / world as u64) as usize,
            micro_batches: opts.accum_freq.max(1) as usize,
            rank: slice_rank,
            world: slices,
            image_size: opts.model.vision_cfg.image_size as u32,
            context_length: opts.model.text_cfg.context_length,
            workers: opts.workers,
            prefetch: opts.prefetch,
            seed: opts.seed + if slices == 1 { rank as u64 } else { 0 },
        },
        position,
    )
}

/// What this invocation did, for the [`TrainSummary`].
struct Tally {
    started: Instant,
    batch: u64,
    steps: u64,
    first_loss: Option<f64>,
    recent: Vec<f64>,
    per_input: Vec<u64>,
}

impl Tally {
    fn new(plan: &Plan, batch: u64) -> Self {
        Self {
            started: Instant::now(),
            batch,
            steps: 0,
            first_loss: None,
            recent: Vec::new(),
            per_input: vec![0u64; plan.shards().iter().map(|s| s.input + 1).max().unwrap_or(0)],
        }
    }

    fn count_inputs(&mut self, batches: &[Batch]) {
        for b in batches {
            for &i in &b.inputs {
                self.per_input[i] += 1;
            }
        }
    }

    fn record(&mut self, loss: f64) {
        self.steps += 1;
        self.first_loss.get_or_insert(loss);
        self.recent.push(loss);
        if self.recent.len() > 10 {
            self.recent.remove(0);
        }
    }

    /// The summary (a collective: samples per input are summed over ranks).
    fn summary(self, comm: &dyn Comm, s: &Session, total: u64) -> Result<TrainSummary> {
        let el = self.started.elapsed().as_secs_f64();
        Ok(TrainSummary {
            steps: s.step,
            total_steps: total,
            finished: s.step == total,
            first_loss: self.first_loss,
            last_loss: (!self.recent.is_empty())
                .then(|| self.recent.iter().sum::<f64>() / self.recent.len() as f64),
            samples_per_s: if el > 0.0 {
                (self.steps * self.batch) as f64 / el
            } else {
                0.0
            },
            samples_per_input: sum_over_ranks(comm, &self.per_input)?,
            skipped_steps: s.skipped,
            batch: self.batch,
            preempted: None,
        })
    }
}

/// Element-wise sum of every rank's counts.
fn sum_over_ranks(comm: &dyn Comm, counts: &[u64]) -> Result<Vec<u64>> {
    let all = comm.all_gather_u64(counts)?;
    let mut out = vec![0u64; counts.len()];
    for chunk in all.chunks_exact(counts.len().max(1)) {
        for (o, c) in out.iter_mut().zip(chunk) {
            *o += c;
        }
    }
    Ok(out)
}

/// `θ ← (1−α)·θ_prev + α·θ` for every parameter.
pub fn patch_weights(vars: &[(String, Var)], prev: &StateDict, alpha: f64) -> Result<()> {
    for (n, v) in vars {
        let p = prev
            .get(n)
            .with_context(|| format!("previous model has no `{n}` to patch with"))?
            .to_dtype(DType::F32)?
            .to_device(v.device())?;
        let mixed = ((p * (1.0 - alpha))? + (v.as_tensor() * alpha)?)?;
        v.set(&mixed)?;
    }
    Ok(())
}
