//! The training loop: OpenCLIP's `train_one_epoch` (contrastive loss, gradient accumulation
//! with feature caching, clipping, AdamW, logit-scale clamp, cosine schedule) with DataComp's
//! output layout and exact, atomic resumption.
//!
//! Output layout under `{output_dir}/{exp_name}/`:
//! - `checkpoints/epoch_N.safetensors`, `checkpoints/epoch_latest.safetensors`: model weights
//!   with OpenCLIP names (load with `open_clip.create_model(arch)` + `load_state_dict`);
//! - `checkpoints/train_state.json` + `checkpoints/state_stepNNNNNNNN.safetensors`: everything
//!   to resume exactly (weights, AdamW moments and per-parameter steps, step, epoch, data
//!   position; the RNG is a pure function of seed and position). The JSON is written last and
//!   names its tensor file, so a kill at any moment leaves a consistent pair;
//! - `metrics.jsonl`: one JSON line per optimizer step;
//! - `out.log`, `params.txt`, `params.yaml`, `model_config.json`, `info.json` (written by the
//!   CLI).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};
use tic_model::checkpoint::{load_trainable, save_varmap_safetensors, StateDict};
use tic_model::init::{new_trainable, param_specs};
use tic_model::{Clip, ClipConfig};

use crate::loader::{Batch, Loader, LoaderOptions, ShardStore};
use crate::loss::{clip_logits, clip_loss, distillation_loss};
use crate::optim::{clamp_logit_scale, clip_grad_norm, grad_norm, AdamW, AdamWConfig};
use crate::plan::{Plan, Position};
use crate::schedule::{cosine_lr, StepCounts};

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
    /// Zero-shot classification set evaluated at every epoch end (`--imagenet_val`).
    pub imagenet_val: Option<crate::zeroshot::ZeroShotVal>,
}

impl TrainOptions {
    /// The step counts of this run (OpenCLIP arithmetic).
    pub fn counts(&self) -> StepCounts {
        StepCounts::new(
            self.train_num_samples,
            self.global_batch,
            self.num_checkpoints,
            self.workers as u64,
            self.accum_freq,
            1,
        )
    }

    fn fingerprint(&self) -> serde_json::Value {
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
#[derive(Debug, Clone)]
pub enum Init {
    /// OpenCLIP random init with the run's seed.
    Scratch,
    /// Weights only from a checkpoint (safetensors or OpenCLIP `.pt`): `--new_run` semantics.
    Weights(PathBuf),
    /// Exact resumption from a `train_state.json`.
    Resume(PathBuf),
}

/// The saved training state (`train_state.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimizer steps done.
    pub step: u64,
    /// Completed epochs.
    pub epoch: u64,
    /// Total optimizer steps of the run.
    pub total_steps: u64,
    /// Loader position after the last step.
    pub data_position: Position,
    /// Tensor file (weights and optimizer state), relative to the JSON.
    pub tensors: String,
    /// Steps skipped for non-finite loss or gradients so far.
    pub skipped_steps: u64,
    /// Settings that must not change on resume.
    pub fingerprint: serde_json::Value,
}

/// The run folder `{output_dir}/{exp_name}`.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// Its path.
    pub root: PathBuf,
}

impl RunDir {
    /// A run folder (created when needed).
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(root.join("checkpoints"))
            .with_context(|| format!("creating {}", root.join("checkpoints").display()))?;
        Ok(Self { root })
    }
    /// `checkpoints/`.
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }
    /// `checkpoints/train_state.json`.
    pub fn state_json(&self) -> PathBuf {
        self.checkpoints().join("train_state.json")
    }
    /// `checkpoints/epoch_latest.safetensors`.
    pub fn latest(&self) -> PathBuf {
        self.checkpoints().join("epoch_latest.safetensors")
    }
    /// `metrics.jsonl`.
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }
    /// Appends a line to `out.log` (and logs it).
    pub fn log(&self, line: &str) {
        tracing::info!("{line}");
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("out.log"))
        {
            let _ = writeln!(f, "{line}");
        }
    }
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
    /// Mean samples/s over this invocation's steps.
    pub samples_per_s: f64,
    /// Samples drawn per input (`::` entry) in this invocation.
    pub samples_per_input: Vec<u64>,
    /// Steps skipped because of non-finite values.
    pub skipped_steps: u64,
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

/// Reads a `train_state.json` and its tensors.
pub fn read_state(json: &Path) -> Result<(TrainState, HashMap<String, Tensor>)> {
    let st: TrainState = serde_json::from_slice(
        &std::fs::read(json).with_context(|| format!("reading {}", json.display()))?,
    )
    .with_context(|| format!("{}: not a tic-train state file", json.display()))?;
    let tpath = json.parent().unwrap_or(Path::new(".")).join(&st.tensors);
    let t = candle_core::safetensors::load(&tpath, &Device::Cpu)
        .with_context(|| format!("reading {} (named by {})", tpath.display(), json.display()))?;
    Ok((st, t))
}

fn build_model(
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

/// Appends one JSON line to `path` (created if missing).
fn append_line(path: &Path, v: &serde_json::Value) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(f, "{v}").with_context(|| format!("writing {}", path.display()))
}

fn to_device(b: &Batch, dev: &Device) -> Result<(Tensor, Tensor)> {
    let s = b.image_size;
    let imgs = Tensor::from_slice(&b.images, (b.size, 3, s, s), dev)?;
    let toks = Tensor::from_slice(&b.tokens, (b.size, b.tokens.len() / b.size), dev)?;
    Ok((imgs, toks))
}

fn f32(t: &Tensor) -> candle_core::Result<Tensor> {
    t.to_dtype(DType::F32)
}

/// Loss for one (image, text) feature set, with the optional LwF term.
fn total_loss(
    img: &Tensor,
    txt: &Tensor,
    scale: &Tensor,
    teacher_logits: Option<&(Tensor, Tensor)>,
    distill_weight: f64,
) -> Result<Tensor> {
    let mut loss = clip_loss(img, txt, scale)?;
    if let Some(tl) = teacher_logits {
        let (si, st) = clip_logits(img, txt, scale)?;
        let d = distillation_loss((&si, &st), (&tl.0, &tl.1))?;
        loss = (loss + (d * distill_weight)?)?;
    }
    Ok(loss)
}

/// Trains (or resumes) a run. `teacher` enables LwF; `patch_from` (the previous model's
/// weights) enables weight patching at the end.
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
    let cfg = &opts.model;
    let counts = opts.counts();
    if counts.steps_per_epoch == 0 {
        bail!(
            "no optimizer step: train_num_samples {} / num_checkpoints {} is less than one batch of {}",
            opts.train_num_samples,
            opts.num_checkpoints,
            opts.global_batch
        );
    }
    let total = counts.total_steps;
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
    let mut opt = AdamW::new(vars.clone(), opts.adamw);
    let mut start = 0u64;
    let mut pos = Position::default();
    let mut skipped = 0u64;
    if let Init::Resume(json) = init {
        let (st, t) = read_state(json)?;
        if st.fingerprint != opts.fingerprint() {
            bail!(
                "{}: the run was started with other settings ({}); now {}",
                json.display(),
                st.fingerprint,
                opts.fingerprint()
            );
        }
        for (n, v) in &vars {
            let x = t
                .get(&format!("model/{n}"))
                .with_context(|| format!("{}: no tensor model/{n}", json.display()))?;
            v.set(&x.to_dtype(DType::F32)?.to_device(device)?)?;
        }
        opt.load_state(&t, &json.display().to_string())?;
        start = st.step;
        pos = st.data_position;
        skipped = st.skipped_steps;
        run.log(&format!(
            "resuming at step {start}/{total} from {}",
            json.display()
        ));
    }
    // Keep the metrics of the steps before `start` only (a killed run may have logged more).
    let metrics_path = run.metrics();
    if metrics_path.exists() {
        let text = std::fs::read_to_string(&metrics_path)?;
        let kept: String = text
            .lines()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                    .is_some_and(|s| s <= start)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        tic_shards::atomic::write_atomic(&metrics_path, kept.as_bytes())?;
    }
    let mut metrics = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&metrics_path)
        .with_context(|| format!("opening {}", metrics_path.display()))?;

    let mut model = build_model(cfg, &vars, opts.precision, device)?;
    let logit_var = vars
        .iter()
        .find(|(n, _)| n == "logit_scale")
        .map(|(_, v)| v.clone())
        .context("no logit_scale parameter")?;
    let mut loader = Loader::start(
        plan.clone(),
        store,
        LoaderOptions {
            batch_size: counts.loader_batch as usize,
            image_size: cfg.vision_cfg.image_size as u32,
            context_length: cfg.text_cfg.context_length,
            workers: opts.workers,
            prefetch: opts.prefetch,
            seed: opts.seed,
        },
        pos,
    )?;
    let pb = tic_shards::cli::progress(total, "steps", opts.quiet);
    pb.set_position(start);
    pb.set_message("train");
    let t0 = Instant::now();
    let mut first_loss = None;
    let mut recent: Vec<f64> = Vec::new();
    let mut per_input = vec![0u64; plan.shards().iter().map(|s| s.input + 1).max().unwrap_or(0)];
    let mut done_here = 0u64;
    let mut step = start;
    while step < total {
        if opts.stop_after_steps.is_some_and(|n| done_here >= n) {
            break;
        }
        let ts = Instant::now();
        let lr = cosine_lr(opts.lr, opts.warmup, total, step);
        let mut batches = Vec::new();
        for _ in 0..opts.accum_freq.max(1) {
            let b = loader.next_batch()?;
            for &i in &b.inputs {
                per_input[i] += 1;
            }
            batches.push(b);
        }
        let data_s = ts.elapsed().as_secs_f64();
        pos = batches.last().expect("accum >= 1").end;
        if opts.precision == Precision::Bf16 {
            model = build_model(cfg, &vars, opts.precision, device)?;
        }
        let inputs: Vec<(Tensor, Tensor)> = batches
            .iter()
            .map(|b| to_device(b, device))
            .collect::<Result<_>>()?;
        let teacher_logits: Vec<Option<(Tensor, Tensor)>> = inputs
            .iter()
            .map(|(im, tk)| -> Result<Option<(Tensor, Tensor)>> {
                let Some(t) = teacher else { return Ok(None) };
                let (ti, tt, ts) = t.forward(im, tk)?;
                let (a, b) = clip_logits(&f32(&ti)?, &f32(&tt)?, &f32(&ts)?)?;
                Ok(Some((a.detach(), b.detach())))
            })
            .collect::<Result<_>>()?;
        let (loss_value, mut grads) = if inputs.len() == 1 {
            let (im, tk) = &inputs[0];
            let (i, t, s) = model.forward(im, tk)?;
            let loss = total_loss(
                &f32(&i)?,
                &f32(&t)?,
                &f32(&s)?,
                teacher_logits[0].as_ref(),
                opts.distill_weight,
            )?;
            let g = loss.backward()?;
            (loss.to_scalar::<f32>()? as f64, opt.grads(&g))
        } else {
            // OpenCLIP's accumulation: cache every round's features without gradient, then
            // recompute each round with gradient against the others' cached features.
            let cached: Vec<(Tensor, Tensor)> = inputs
                .iter()
                .map(|(im, tk)| -> Result<(Tensor, Tensor)> {
                    let (i, t, _) = model.forward(im, tk)?;
                    Ok((f32(&i)?.detach(), f32(&t)?.detach()))
                })
                .collect::<Result<_>>()?;
            let mut sum: Vec<Option<Tensor>> = vec![None; vars.len()];
            let mut last = 0.0;
            for (j, (im, tk)) in inputs.iter().enumerate() {
                let (i, t, s) = model.forward(im, tk)?;
                let mut imgs: Vec<Tensor> = cached.iter().map(|c| c.0.clone()).collect();
                let mut txts: Vec<Tensor> = cached.iter().map(|c| c.1.clone()).collect();
                imgs[j] = f32(&i)?;
                txts[j] = f32(&t)?;
                let all_i = Tensor::cat(&imgs, 0)?;
                let all_t = Tensor::cat(&txts, 0)?;
                let mut loss = clip_loss(&all_i, &all_t, &f32(&s)?)?;
                if let Some((a, b)) = &teacher_logits[j] {
                    // Distillation per round, on the round's own batch.
                    let (si, st) = clip_logits(&f32(&i)?, &f32(&t)?, &f32(&s)?)?;
                    let d = distillation_loss((&si, &st), (a, b))?;
                    loss = (loss + (d * opts.distill_weight)?)?;
                }
                let g = loss.backward()?;
                for (acc, gi) in sum.iter_mut().zip(opt.grads(&g)) {
                    *acc = match (acc.take(), gi) {
                        (Some(a), Some(b)) => Some((a + b)?),
                        (a, b) => a.or(b),
                    };
                }
                last = loss.to_scalar::<f32>()? as f64;
            }
            (last, sum)
        };
        let norm = match opts.grad_clip_norm {
            Some(m) => clip_grad_norm(&mut grads, m)?,
            None => grad_norm(&grads)?,
        };
        let finite = loss_value.is_finite() && norm.is_finite();
        if finite {
            opt.step(&grads, lr)?;
            clamp_logit_scale(&logit_var)?;
        } else {
            skipped += 1;
            run.log(&format!(
                "step {}: non-finite loss ({loss_value}) or gradient norm ({norm}); step skipped ({skipped} so far)",
                step + 1
            ));
            if skipped > opts.max_nonfinite {
                bail!(
                    "stopping at step {}: {skipped} steps had non-finite loss or gradients",
                    step + 1
                );
            }
        }
        step += 1;
        done_here += 1;
        let dt = ts.elapsed().as_secs_f64();
        let ls: f32 = logit_var.as_tensor().to_scalar()?;
        let sps = counts.loader_batch as f64 * opts.accum_freq.max(1) as f64 / dt;
        let line = serde_json::json!({
            "step": step,
            "epoch": (step - 1) / counts.steps_per_epoch,
            "loss": loss_value,
            "lr": lr,
            "logit_scale": ls,
            "scale": (ls as f64).exp(),
            "grad_norm": norm,
            "samples_per_s": sps,
            "data_wait_s": data_s,
            "step_s": dt,
            "skipped": !finite,
        });
        writeln!(metrics, "{line}")?;
        first_loss.get_or_insert(loss_value);
        recent.push(loss_value);
        if recent.len() > 10 {
            recent.remove(0);
        }
        pb.set_position(step);
        pb.set_message(format!("loss {loss_value:.4}"));
        let end_of_epoch = step % counts.steps_per_epoch == 0;
        if step == total {
            if let Some(prev) = patch_from {
                patch_weights(&vars, prev, opts.patch_alpha)?;
                run.log(&format!(
                    "patched: θ = {:.3}·θ_prev + {:.3}·θ",
                    1.0 - opts.patch_alpha,
                    opts.patch_alpha
                ));
            }
        }
        if end_of_epoch || (opts.checkpoint_every > 0 && step % opts.checkpoint_every == 0) {
            let epoch = step / counts.steps_per_epoch;
            let keep_epoch = end_of_epoch
                && (step == total || (opts.save_frequency > 0 && epoch % opts.save_frequency == 0));
            save_checkpoint(
                opts, run, &vm, &opt, step, epoch, total, pos, skipped, keep_epoch,
            )?;
            if end_of_epoch {
                run.log(&format!(
                    "epoch {epoch} done at step {step}/{total}: loss {loss_value:.4}, lr {lr:.3e}, logit_scale {ls:.4}"
                ));
                if let Some(val) = &opts.imagenet_val {
                    let model = build_model(cfg, &vars, Precision::Fp32, device)?;
                    let r = pb.suspend(|| val.evaluate(model, device))?;
                    append_line(
                        &run.checkpoints().join("results.jsonl"),
                        &r.record(epoch, step),
                    )?;
                    run.log(&r.log_line(epoch));
                }
            }
        }
    }
    pb.finish_and_clear();
    metrics.flush()?;
    let el = t0.elapsed().as_secs_f64();
    Ok(TrainSummary {
        steps: step,
        total_steps: total,
        finished: step == total,
        first_loss,
        last_loss: (!recent.is_empty()).then(|| recent.iter().sum::<f64>() / recent.len() as f64),
        samples_per_s: if el > 0.0 {
            (done_here * counts.loader_batch * opts.accum_freq.max(1)) as f64 / el
        } else {
            0.0
        },
        samples_per_input: per_input,
        skipped_steps: skipped,
    })
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

#[allow(clippy::too_many_arguments)]
fn save_checkpoint(
    opts: &TrainOptions,
    run: &RunDir,
    vm: &VarMap,
    opt: &AdamW,
    step: u64,
    epoch: u64,
    total: u64,
    pos: Position,
    skipped: u64,
    keep_epoch: bool,
) -> Result<()> {
    let cfg = &opts.model;
    let ck = run.checkpoints();
    // 1. Model weights for OpenCLIP.
    save_varmap_safetensors(cfg, vm, &run.latest())?;
    if keep_epoch {
        tic_shards::atomic::copy_file(
            &run.latest(),
            &ck.join(format!("epoch_{epoch}.safetensors")),
        )?;
    }
    // 2. The resumable state: tensors, then the JSON naming them.
    let mut t: HashMap<String, Tensor> = HashMap::new();
    for (n, v) in &opt
        .params
        .iter()
        .map(|p| (p.name.clone(), p.var.clone()))
        .collect::<Vec<_>>()
    {
        t.insert(
            format!("model/{n}"),
            v.as_tensor()
                .to_dtype(DType::F32)?
                .to_device(&Device::Cpu)?,
        );
    }
    for (k, v) in opt.state_tensors()? {
        t.insert(k, v.to_device(&Device::Cpu)?.contiguous()?);
    }
    let tname = format!("state_step{step:08}.safetensors");
    tic_model::checkpoint::write_safetensors_atomic(&t, &ck.join(&tname))?;
    let st = TrainState {
        step,
        epoch,
        total_steps: total,
        data_position: pos,
        tensors: tname.clone(),
        skipped_steps: skipped,
        fingerprint: opts.fingerprint(),
    };
    tic_shards::atomic::write_atomic(
        run.state_json(),
        serde_json::to_string_pretty(&st)?.as_bytes(),
    )
    .with_context(|| format!("writing {}", run.state_json().display()))?;
    // 3. Older state tensors are now unreferenced.
    for e in std::fs::read_dir(&ck)? {
        let name = e?.file_name().to_string_lossy().into_owned();
        if name.starts_with("state_step") && name.ends_with(".safetensors") && name != tname {
            let _ = std::fs::remove_file(ck.join(name));
        }
    }
    Ok(())
}
