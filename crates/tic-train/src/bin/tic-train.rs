//! `tic-train`: DataComp's `train.py` (with the TiC patch) in Rust, plus the TiC-CLIP
//! continual strategies. See docs/train.md.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use clap::Parser;
use serde::Serialize;
use tic_model::checkpoint::{load_clip, load_state_dict};
use tic_train::loader::{Loader, LoaderOptions, ShardStore};
use tic_train::optim::AdamWConfig;
use tic_train::plan::{Plan, PlanShard, Position, Sampling};
use tic_train::scale::scale;
use tic_train::shards::{input_shards, Shard};
use tic_train::strategy::{allocation, keep_subset, Strategy};
use tic_train::trainer::{train, Init, Precision, RunDir, TrainOptions};
use tic_train::zeroshot::ZeroShotVal;

#[derive(Parser, Debug, Serialize)]
#[command(
    name = "tic-train",
    rename_all = "snake_case",
    version,
    about = "Train CLIP on WebDataset shards (DataComp train.py flags), with the TiC-CLIP continual strategies",
    long_about = "Train CLIP on WebDataset shards. Flags follow DataComp's train.py (with the TiC patch); \
outputs follow its layout: OUTPUT_DIR/EXP_NAME/{checkpoints/epoch_N.safetensors, checkpoints/epoch_latest.safetensors, \
params.txt, params.yaml, out.log, metrics.jsonl, model_config.json, info.json, compute.json}.\n\n\
Continual learning: pass every time split so far in --data_dir (oldest first, joined by ::) and --strategy; \
the run is step t = number of splits - first_step_splits, its name defaults to STRATEGY_LASTSPLIT, and warm \
starts load OUTPUT_DIR/STRATEGY_PREVSPLIT/checkpoints/epoch_latest.safetensors."
)]
struct Args {
    /// Compute scale: tic_debug, tic_medium, tic_large, tic_xlarge (TiC patch values) or tiny (CPU tests/demo).
    #[arg(long)]
    scale: String,
    /// Shard folders or .tar files, several joined by `::` (local paths or object-store URLs).
    #[arg(long)]
    data_dir: String,
    /// Sampling weight per --data_dir entry, joined by `::` (per shard, with replacement only).
    #[arg(long)]
    data_weights: Option<String>,
    /// Where runs are written.
    #[arg(long)]
    output_dir: PathBuf,
    /// Run name (default: SCALE_scale, or STRATEGY_LASTSPLIT with --strategy).
    #[arg(long)]
    exp_name: Option<String>,
    /// Model architecture (overrides the scale's): an OpenCLIP name or a model-config JSON file.
    #[arg(long)]
    model: Option<String>,
    /// Global batch size (overrides the scale's; results are then not comparable).
    #[arg(long)]
    batch_size: Option<u64>,
    /// Peak learning rate (overrides the scale's).
    #[arg(long)]
    lr: Option<f64>,
    /// Samples seen in this run (overrides the scale's per-step budget).
    #[arg(long)]
    train_num_samples: Option<u64>,
    /// Warmup steps (overrides the scale's).
    #[arg(long)]
    warmup: Option<u64>,
    /// Sample shards with replacement (OpenCLIP resampled shards; what DataComp always did).
    /// Without it, every sample is seen exactly once per pass.
    #[arg(long)]
    dataset_resampled: bool,
    /// With --resume PATH: load weights only (fresh optimizer, schedule and step).
    #[arg(long)]
    new_run: bool,
    /// `latest` (continue this run if it has a saved state) or a checkpoint: a train_state.json
    /// (exact resume) or model weights (.safetensors or OpenCLIP epoch_N.pt: weights only).
    #[arg(long, default_value = "latest")]
    resume: String,
    /// Number of checkpoints ("epochs") the budget is cut into (DataComp default 5).
    #[arg(long, default_value_t = 5)]
    num_checkpoints: u64,
    /// Keep epoch_N every this many epochs (0: the last only), as OpenCLIP.
    #[arg(long, default_value_t = 0)]
    save_frequency: u64,
    /// Also save a resumable state every this many steps (0: at epoch ends only).
    #[arg(long, default_value_t = 0)]
    checkpoint_every: u64,
    /// Random seed (model init, data order, augmentation).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// fp32, or bf16 (mixed: bf16 compute, f32 master weights; `amp_bf16` is accepted too).
    #[arg(long, default_value = "fp32")]
    precision: String,
    /// Clip the global gradient norm.
    #[arg(long)]
    grad_clip_norm: Option<f64>,
    /// Gradient accumulation rounds per optimizer step.
    #[arg(long, default_value_t = 1)]
    accum_freq: u64,
    /// Zero-shot classification set evaluated at the end of every epoch, as OpenCLIP's ImageNet
    /// validation: any WebDataset classification set in CLIP_benchmark layout (shards in DIR/test/
    /// or DIR/). Results go to checkpoints/results.jsonl (imagenet-zeroshot-val-top1/top5) and
    /// out.log.
    #[arg(long, value_name = "DIR")]
    imagenet_val: Option<PathBuf>,
    /// Images / prompts per forward pass of the --imagenet_val evaluation.
    #[arg(long, default_value_t = 64)]
    imagenet_val_batch_size: usize,
    /// Loader worker threads (OpenCLIP also rounds the batches per epoch to a multiple of it).
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Write a line to out.log every this many steps (metrics.jsonl gets every step).
    #[arg(long, default_value_t = 100)]
    log_every_n_steps: u64,
    /// Continual-learning strategy; --data_dir then lists every time split so far, oldest first.
    #[arg(long, value_enum)]
    strategy: Option<Strategy>,
    /// How many leading --data_dir entries form the first time step (TiC: 2014+2015+2016 = 3).
    #[arg(long, default_value_t = 1)]
    first_step_splits: usize,
    /// Previous step's model for warm starts, LwF and patching (default: found by name).
    #[arg(long)]
    prev_checkpoint: Option<PathBuf>,
    /// Weight of the LwF distillation loss.
    #[arg(long, default_value_t = 1.0)]
    lwf_weight: f64,
    /// Patching: weight α of the newly trained model in θ = (1−α)·θ_prev + α·θ_new.
    #[arg(long, default_value_t = 0.5)]
    patching_alpha: f64,
    /// Shards mixed per shuffle block.
    #[arg(long, default_value_t = 8)]
    shards_per_block: usize,
    /// Batches prepared ahead.
    #[arg(long, default_value_t = 4)]
    prefetch: usize,
    /// cpu, cuda, or auto.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Only time the data loader for this many batches (no training), then exit.
    #[arg(long)]
    loader_benchmark: Option<u64>,
    /// Quieter (no progress bar).
    #[arg(short, long)]
    quiet: bool,
}

fn device(name: &str) -> Result<Device> {
    Ok(match name {
        "cpu" => Device::Cpu,
        "cuda" => Device::new_cuda(0).context("--device cuda (build with --features cuda)")?,
        "auto" => Device::cuda_if_available(0)?,
        other => bail!("--device {other:?}: expected cpu, cuda or auto"),
    })
}

fn split_name(entry: &str) -> String {
    entry
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(entry)
        .trim_end_matches(".tar")
        .to_string()
}

fn to_plan_shard(s: &Shard) -> Result<PlanShard> {
    Ok(PlanShard {
        samples: u32::try_from(s.samples)
            .with_context(|| format!("{}: too many samples for one shard", s.location))?,
        weight: s.weight,
        subset: None,
        input: s.input,
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    tic_shards::cli::init_logging(0, u8::from(args.quiet));
    tic_model::heap::reuse_freed_buffers();
    run(args)
}

fn run(args: Args) -> Result<()> {
    let sc = scale(&args.scale)?;
    let model_name = args.model.clone().unwrap_or_else(|| sc.model.to_string());
    let cfg = tic_train::scale::model_config(&model_name)?;
    let precision = match args.precision.as_str() {
        "fp32" => Precision::Fp32,
        "bf16" | "amp_bf16" | "amp_bfloat16" => Precision::Bf16,
        other => bail!("--precision {other:?} is not supported: use fp32 or bf16 (mixed bf16, f32 master weights)"),
    };
    if let Some(b) = args.batch_size {
        if b != sc.batch_size {
            tracing::warn!(
                "--batch_size {b} overrides scale {}'s {}: results are not comparable to the benchmark",
                sc.name,
                sc.batch_size
            );
        }
    }
    let dev = device(&args.device)?;
    let entries: Vec<&str> = args.data_dir.split("::").collect();
    let shards = input_shards(&args.data_dir, args.data_weights.as_deref())?;

    // Time steps (strategy mode): the first `first_step_splits` entries are step 0.
    let k0 = args.first_step_splits.max(1);
    let step_of = |input: usize| input.saturating_sub(k0 - 1);
    let num_steps = step_of(entries.len() - 1) + 1;
    let t = num_steps - 1;
    let mut budget = args.train_num_samples.unwrap_or(sc.train_num_samples);
    let mut plan_shards: Vec<PlanShard> = Vec::new();
    if let Some(strategy) = args.strategy {
        if args.data_weights.is_some() {
            bail!(
                "--data_weights cannot be combined with --strategy (the strategy sets the mixture)"
            );
        }
        let mut sizes = vec![0u64; num_steps];
        for s in &shards {
            sizes[step_of(s.input)] += s.samples;
        }
        let alloc = allocation(strategy, &sizes, t)?;
        for (step, n) in alloc.iter().enumerate() {
            let mut group: Vec<PlanShard> = shards
                .iter()
                .filter(|s| step_of(s.input) == step)
                .map(to_plan_shard)
                .collect::<Result<_>>()?;
            if *n == Some(0) {
                // Not drawn: keep the shards (so indices match) but empty.
                for g in &mut group {
                    g.subset = Some(Arc::new(Vec::new()));
                    g.weight = 0.0;
                }
            } else {
                keep_subset(&mut group, *n, args.seed, step);
            }
            plan_shards.extend(group);
        }
        budget *= strategy.budget_multiplier(t);
        tracing::info!(
            "strategy {} at time step {t}: samples per step {:?}, allocation {:?}, budget {budget}",
            strategy.name(),
            sizes,
            alloc
        );
    } else {
        plan_shards = shards.iter().map(to_plan_shard).collect::<Result<_>>()?;
    }
    if args.data_weights.is_some() && !args.dataset_resampled {
        bail!(
            "--data_weights need sampling with replacement (--dataset_resampled), as in OpenCLIP"
        );
    }
    let sampling = if args.dataset_resampled {
        Sampling::Resampled
    } else {
        Sampling::WithoutReplacement
    };
    let plan = Arc::new(Plan::new(
        plan_shards,
        sampling,
        args.seed,
        args.shards_per_block,
    )?);
    let store = ShardStore::new(shards.iter().map(|s| s.location.clone()).collect());

    if let Some(n) = args.loader_benchmark {
        let b = args.batch_size.unwrap_or(sc.batch_size) as usize;
        let mut l = Loader::start(
            plan,
            store,
            LoaderOptions {
                batch_size: b,
                image_size: cfg.vision_cfg.image_size as u32,
                context_length: cfg.text_cfg.context_length,
                workers: args.workers,
                prefetch: args.prefetch,
                seed: args.seed,
            },
            Position::default(),
        )?;
        l.next_batch()?; // warm-up: opens the first shards
        let t0 = std::time::Instant::now();
        for _ in 0..n {
            l.next_batch()?;
        }
        let s = t0.elapsed().as_secs_f64();
        println!(
            "{}",
            serde_json::json!({"batches": n, "batch_size": b, "workers": args.workers,
                "image_size": cfg.vision_cfg.image_size, "seconds": s,
                "samples_per_s": (n as f64 * b as f64) / s})
        );
        return Ok(());
    }

    let exp_name = args
        .exp_name
        .clone()
        .unwrap_or_else(|| match args.strategy {
            Some(s) => format!("{}_{}", s.name(), split_name(entries[entries.len() - 1])),
            None => format!("{}_scale", sc.name),
        });
    let run_dir = RunDir::new(args.output_dir.join(&exp_name))?;
    let prev = match (args.strategy, &args.prev_checkpoint) {
        (_, Some(p)) => Some(p.clone()),
        (Some(s), None) if t > 0 => {
            // The previous step's last split entry names the previous run.
            let last_prev = entries
                .iter()
                .enumerate()
                .filter(|(i, _)| step_of(*i) == t - 1)
                .map(|(_, e)| *e)
                .next_back()
                .expect("step t-1 has entries");
            Some(
                args.output_dir
                    .join(format!("{}_{}", s.name(), split_name(last_prev)))
                    .join("checkpoints/epoch_latest.safetensors"),
            )
        }
        _ => None,
    };
    let uses_prev = args.strategy.is_some_and(|s| s.warm_start()) && t > 0;
    if uses_prev {
        let p = prev.as_ref().expect("set above");
        if !p.exists() {
            bail!(
                "{}: the previous time step's checkpoint is missing; train step {} first or pass --prev_checkpoint",
                p.display(),
                t - 1
            );
        }
    }

    let init = if args.resume == "latest" {
        if run_dir.state_json().exists() {
            Init::Resume(run_dir.state_json())
        } else if uses_prev {
            Init::Weights(prev.clone().expect("checked"))
        } else {
            Init::Scratch
        }
    } else {
        let p = PathBuf::from(&args.resume);
        if !p.exists() {
            bail!("--resume {}: no such file", p.display());
        }
        if p.extension().is_some_and(|e| e == "json") {
            if args.new_run {
                let (_, t) = tic_train::trainer::read_state(&p)?;
                let sd: tic_model::checkpoint::StateDict = t
                    .into_iter()
                    .filter_map(|(k, v)| k.strip_prefix("model/").map(|n| (n.to_string(), v)))
                    .collect();
                let tmp = run_dir.checkpoints().join("init_weights.safetensors");
                tic_model::checkpoint::write_safetensors_atomic(&sd, &tmp)?;
                Init::Weights(tmp)
            } else {
                Init::Resume(p)
            }
        } else {
            if !args.new_run {
                tracing::warn!(
                    "--resume {}: a model file holds weights only; optimizer, schedule and step start fresh (as --new_run)",
                    p.display()
                );
            }
            Init::Weights(p)
        }
    };

    let opts = TrainOptions {
        model: cfg.clone(),
        global_batch: args.batch_size.unwrap_or(sc.batch_size),
        lr: args.lr.unwrap_or(sc.learning_rate),
        warmup: args.warmup.unwrap_or(sc.warmup),
        train_num_samples: budget,
        num_checkpoints: args.num_checkpoints.max(1),
        workers: args.workers.max(1),
        accum_freq: args.accum_freq.max(1),
        seed: args.seed,
        grad_clip_norm: args.grad_clip_norm,
        precision,
        save_frequency: args.save_frequency,
        checkpoint_every: args.checkpoint_every,
        adamw: AdamWConfig {
            beta2: sc.beta2.unwrap_or(0.98),
            ..AdamWConfig::default()
        },
        distill_weight: args.lwf_weight,
        patch_alpha: args.patching_alpha,
        prefetch: args.prefetch,
        shards_per_block: args.shards_per_block,
        stop_after_steps: None,
        quiet: args.quiet,
        max_nonfinite: 10,
        imagenet_val: args
            .imagenet_val
            .as_deref()
            .map(|d| ZeroShotVal::open(d, args.imagenet_val_batch_size, args.workers))
            .transpose()?,
    };
    write_params(&run_dir, &args, &opts, &model_name, &exp_name)?;
    let teacher = match (args.strategy, &prev) {
        (Some(Strategy::Lwf), Some(p)) if t > 0 => Some(load_clip(&cfg, p, DType::F32, &dev)?),
        _ => None,
    };
    let patch = match (args.strategy, &prev) {
        (Some(Strategy::Patching), Some(p)) if t > 0 => Some(load_state_dict(p)?),
        _ => None,
    };
    let counts = opts.counts();
    run_dir.log(&format!(
        "tic-train {exp_name}: {} on {} shards ({} samples per pass, {:?}), {} steps of {} samples ({} epochs of {} steps), device {:?}",
        model_name,
        shards.len(),
        plan.pass_len(),
        sampling,
        counts.total_steps,
        counts.loader_batch * opts.accum_freq,
        counts.epochs,
        counts.steps_per_epoch,
        dev
    ));
    let summary = train(
        &opts,
        plan,
        store,
        &run_dir,
        &init,
        teacher.as_ref(),
        patch.as_ref(),
        &dev,
    )?;
    run_dir.log(&format!(
        "done: {}/{} steps, loss {:?} -> {:?}, {:.1} samples/s, samples per input {:?}, skipped steps {}",
        summary.steps,
        summary.total_steps,
        summary.first_loss,
        summary.last_loss,
        summary.samples_per_s,
        summary.samples_per_input,
        summary.skipped_steps
    ));
    let info = serde_json::json!({
        "scale": sc.name,
        "checkpoint": run_dir.latest(),
        "scale_config": sc,
        "data_dir": args.data_dir,
        "strategy": args.strategy,
        "model": model_name,
    });
    tic_shards::atomic::write_atomic(
        run_dir.root.join("info.json"),
        serde_json::to_string_pretty(&info)?.as_bytes(),
    )?;
    // Training compute of this model (what `tic-metrics` reads as `{time}/compute.json`).
    let batch = counts.loader_batch * opts.accum_freq;
    let compute = serde_json::json!({
        "samples_seen": summary.steps * batch as u64,
        "steps": summary.steps,
        "batch_size": batch,
        "finished": summary.finished,
    });
    tic_shards::atomic::write_atomic(
        run_dir.root.join("compute.json"),
        serde_json::to_string_pretty(&compute)?.as_bytes(),
    )?;
    Ok(())
}

fn write_params(
    run: &RunDir,
    args: &Args,
    opts: &TrainOptions,
    model_name: &str,
    exp_name: &str,
) -> Result<()> {
    let counts = opts.counts();
    let mut v = serde_json::to_value(args)?;
    let m = v.as_object_mut().expect("struct");
    m.insert("name".into(), exp_name.into());
    m.insert("model".into(), model_name.into());
    m.insert("batch_size".into(), opts.global_batch.into());
    m.insert("lr".into(), opts.lr.into());
    m.insert("warmup".into(), opts.warmup.into());
    m.insert("train_num_samples".into(), opts.train_num_samples.into());
    m.insert("beta1".into(), opts.adamw.beta1.into());
    m.insert("beta2".into(), opts.adamw.beta2.into());
    m.insert("eps".into(), opts.adamw.eps.into());
    m.insert("wd".into(), opts.adamw.weight_decay.into());
    m.insert("lr_scheduler".into(), "cosine".into());
    m.insert("total_steps".into(), counts.total_steps.into());
    m.insert("steps_per_epoch".into(), counts.steps_per_epoch.into());
    let mut keys: Vec<_> = m.keys().cloned().collect();
    keys.sort();
    let txt: String = keys
        .iter()
        .map(|k| {
            let val = &m[k];
            let s = match val {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => "None".into(),
                other => other.to_string(),
            };
            format!("{k}: {s}\n")
        })
        .collect();
    tic_shards::atomic::write_atomic(run.root.join("params.txt"), txt.as_bytes())?;
    tic_shards::atomic::write_atomic(
        run.root.join("params.yaml"),
        serde_yaml::to_string(&v)?.as_bytes(),
    )?;
    tic_shards::atomic::write_atomic(
        run.root.join("model_config.json"),
        opts.model.to_json_string().as_bytes(),
    )?;
    Ok(())
}
