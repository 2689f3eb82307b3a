//! From `tic-train`'s command line to a run: the collectives and device, the data (strategy
//! mixture, sampling plan), the run folder and its parameters, where the weights come from
//! (scratch, warm start, exact resume), then the run and its summary files.
//!
//! Every rank resolves the same setup from the same arguments; what depends on the run
//! folder's contents (`--resume latest`) is decided on rank 0 and broadcast.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use tic_dist::{Comm, HostComm};
use tic_eval::run_folder::{
    CHECKPOINTS_DIR, INFO_FILE, LATEST_CHECKPOINT, MODEL_CONFIG_FILE, PARAMS_FILE,
};
use tic_model::checkpoint::{load_clip, load_state_dict, StateDict};
use tic_model::device::DeviceSpec;
use tic_model::{Clip, ClipConfig};

use crate::args::TrainArgs;
use crate::loader::{Loader, LoaderOptions, ShardStore};
use crate::optim::AdamWConfig;
use crate::plan::{Plan, PlanShard, Position, Sampling};
use crate::preempt::{Outcome, StopSignal};
use crate::records::{self, ComputeRecord};
use crate::report::Report;
use crate::scale::{scale, ScaleConfig as Scale};
use crate::scratch::ScratchLimit;
use crate::shards::{input_shards_accepting, Shard};
use crate::strategy::{allocation, keep_subset, Strategy};
use crate::trainer::{train_distributed, Init, Precision, RunDir, TrainOptions, TrainSummary};
use crate::zeroshot::ZeroShotVal;

/// Runs `tic-train` as one rank of the job `host` (MPI, or one process): picks the device
/// (`cuda:local_rank`) and the collectives, then trains. With several ranks, a failure on any
/// rank is reported naming it and ends every rank.
///
/// SIGTERM and SIGINT stop the run after the step in flight with its state saved
/// ([`Outcome::Preempted`], exit status [`crate::preempt::EXIT_PREEMPTED`]); see
/// [`crate::preempt`].
pub fn run(args: &TrainArgs, host: HostComm) -> Result<Outcome> {
    let stop = StopSignal::install()?;
    tic_dist::spread_cpu_threads(host.local_size());
    let dev = device(&args.device, host.local_rank())?;
    let comm = collectives(&args.dist_backend, host, &dev)?;
    let comm = comm.as_ref();
    tic_dist::or_abort(comm, "tic-train", || run_rank(args, comm, &dev, &stop))
}

/// The device of `--device name` ([`DeviceSpec`]): a bare `cuda` and `auto` are
/// `cuda:local_rank`.
fn device(name: &str, local_rank: usize) -> Result<Device> {
    name.parse::<DeviceSpec>()?.open(local_rank)
}

/// The collectives for `backend` on `dev`: NCCL on CUDA (feature `nccl`), else the host's.
fn collectives(backend: &str, host: HostComm, dev: &Device) -> Result<Box<dyn Comm>> {
    let nccl = match backend {
        "nccl" => true,
        "auto" => dev.is_cuda() && cfg!(feature = "nccl") && host.size() > 1,
        _ => false,
    };
    if !nccl {
        return Ok(Box::new(host));
    }
    #[cfg(feature = "nccl")]
    {
        Ok(Box::new(tic_dist::NcclComm::new(host, dev)?))
    }
    #[cfg(not(feature = "nccl"))]
    {
        let _ = host;
        bail!("--dist_backend nccl needs a build with the `nccl` feature (cargo build --features nccl)")
    }
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
        // A pipe: shard has no count yet: the plan asks for it when the shard is drawn.
        samples: u32::try_from(s.samples.unwrap_or(0))
            .with_context(|| format!("{}: too many samples for one shard", s.location))?,
        weight: s.weight,
        subset: None,
        input: s.input,
    })
}

/// The training data: shards, the strategy's mixture and the sampling plan.
pub struct DataSetup {
    /// `--data_dir` entries (`::`-separated).
    pub entries: Vec<String>,
    /// Every shard of every entry.
    pub shards: Vec<Shard>,
    /// Time step `t` of this run (strategy mode; 0 otherwise).
    pub t: usize,
    /// Samples seen in the run (the scale's budget, times the strategy's multiplier).
    pub budget: u64,
    /// The sampling plan.
    pub plan: Arc<Plan>,
    /// The shards' locations, opened on demand.
    pub store: ShardStore,
}

impl DataSetup {
    /// Resolves `--data_dir`, `--data_weights`, `--strategy` and the sampling mode. With
    /// `--dataset_resampled` each rank draws its own stream (seed + rank, as OpenCLIP).
    pub fn resolve(args: &TrainArgs, sc: &Scale, rank: usize) -> Result<Self> {
        let entries: Vec<String> = args.data_dir.split("::").map(str::to_string).collect();
        let shards = input_shards_accepting(
            &args.data_dir,
            args.data_weights.as_deref(),
            args.accept_incomplete,
        )?;
        check_uncounted(args, &shards)?;
        let t = time_step(args, entries.len() - 1);
        let budget = args.train_num_samples.unwrap_or(sc.train_num_samples);
        let (plan_shards, budget) = match args.strategy {
            Some(strategy) => strategy_mixture(args, strategy, &shards, t, rank, budget)?,
            None => (
                shards.iter().map(to_plan_shard).collect::<Result<_>>()?,
                budget,
            ),
        };
        if args.data_weights.is_some() && !args.dataset_resampled {
            bail!(
                "--data_weights need sampling with replacement (--dataset_resampled), as in OpenCLIP"
            );
        }
        let limit: ScratchLimit = args.scratch_limit.parse()?;
        let store = ShardStore::with_scratch(
            shards.iter().map(|s| s.location.clone()).collect(),
            limit.auto(args.shards_per_block),
        )?;
        let plan = Arc::new(sampling_plan(args, &shards, plan_shards, &store, rank)?);
        Ok(Self {
            entries,
            shards,
            t,
            budget,
            plan,
            store,
        })
    }

    /// The run's default name: `STRATEGY_LASTSPLIT`, or `SCALE_scale`.
    fn exp_name(&self, args: &TrainArgs, sc: &Scale) -> String {
        args.exp_name
            .clone()
            .unwrap_or_else(|| match args.strategy {
                Some(s) => format!(
                    "{}_{}",
                    s.name(),
                    split_name(self.entries.last().expect("≥ 1"))
                ),
                None => format!("{}_scale", sc.name),
            })
    }

    /// The previous time step's model (warm starts, LwF, patching): `--prev_checkpoint`, or the
    /// run named after the previous step's last split.
    fn previous_checkpoint(&self, args: &TrainArgs) -> Option<PathBuf> {
        let k0 = args.first_step_splits.max(1);
        match (args.strategy, &args.prev_checkpoint) {
            (_, Some(p)) => Some(p.clone()),
            (Some(s), None) if self.t > 0 => {
                let last_prev = &self.entries[self.t - 1 + k0 - 1];
                Some(
                    args.output_dir
                        .join(format!("{}_{}", s.name(), split_name(last_prev)))
                        .join(CHECKPOINTS_DIR)
                        .join(LATEST_CHECKPOINT),
                )
            }
            _ => None,
        }
    }
}

/// The time step of `--data_dir` entry `input`: the first `--first_step_splits` entries are
/// step 0, each later entry one more.
fn time_step(args: &TrainArgs, input: usize) -> usize {
    let k0 = args.first_step_splits.max(1);
    input.saturating_sub(k0 - 1)
}

/// Refuses shards without a sample count (`pipe:` URLs without `sizes.json`) unless the run
/// samples with replacement for a given `--train_num_samples` without a strategy.
fn check_uncounted(args: &TrainArgs, shards: &[Shard]) -> Result<()> {
    if let Some(p) = shards.iter().find(|s| s.samples.is_none()) {
        if !args.dataset_resampled || args.train_num_samples.is_none() || args.strategy.is_some() {
            bail!(
                "--data_dir shard {}: no sample count; {}{}",
                p.location,
                tic_shards::pipe::COUNTS_HINT,
                if args.strategy.is_some() {
                    " (--strategy needs every split's counts: run tic-sizes and read the files or URLs directly)"
                } else {
                    ""
                }
            );
        }
    }
    Ok(())
}

/// The plan shards of `strategy` at time step `t` (each step's samples allocated, undrawn
/// steps kept empty so indices match) and the run's budget (`budget` times the strategy's
/// multiplier).
fn strategy_mixture(
    args: &TrainArgs,
    strategy: Strategy,
    shards: &[Shard],
    t: usize,
    rank: usize,
    budget: u64,
) -> Result<(Vec<PlanShard>, u64)> {
    if args.data_weights.is_some() {
        bail!("--data_weights cannot be combined with --strategy (the strategy sets the mixture)");
    }
    let mut sizes = vec![0u64; t + 1];
    for s in shards {
        sizes[time_step(args, s.input)] += s.samples.unwrap_or(0);
    }
    let alloc = allocation(strategy, &sizes, t)?;
    let mut plan_shards: Vec<PlanShard> = Vec::new();
    for (step, n) in alloc.iter().enumerate() {
        let mut group: Vec<PlanShard> = shards
            .iter()
            .filter(|s| time_step(args, s.input) == step)
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
    let budget = budget * strategy.budget_multiplier(t);
    if rank == 0 {
        tracing::info!(
            "strategy {} at time step {t}: samples per step {sizes:?}, allocation {alloc:?}, budget {budget}",
            strategy.name(),
        );
    }
    Ok((plan_shards, budget))
}

/// The sampling plan of rank `rank`: with replacement (`--dataset_resampled`, seed + rank) or
/// without; shards without a count (`pipe:`) are counted when first drawn, by streaming them.
fn sampling_plan(
    args: &TrainArgs,
    shards: &[Shard],
    plan_shards: Vec<PlanShard>,
    store: &ShardStore,
    rank: usize,
) -> Result<Plan> {
    let (sampling, plan_seed) = if args.dataset_resampled {
        (Sampling::Resampled, args.seed + rank as u64)
    } else {
        (Sampling::WithoutReplacement, args.seed)
    };
    let unknown: Vec<bool> = shards.iter().map(|s| s.samples.is_none()).collect();
    if !unknown.iter().any(|&u| u) {
        return Plan::new(plan_shards, sampling, plan_seed, args.shards_per_block);
    }
    // pipe: shards are counted when first drawn, by opening (streaming) them.
    let counting = store.clone();
    let counter: crate::plan::Counter = Arc::new(move |i| {
        let n = counting.get(i)?.len();
        u32::try_from(n).context("too many samples for one shard")
    });
    Plan::counted_when_drawn(
        plan_shards,
        unknown,
        counter,
        plan_seed,
        args.shards_per_block,
    )
}

/// `--loader_benchmark N`: times the data loader alone and prints one JSON line.
fn loader_benchmark(
    args: &TrainArgs,
    sc: &Scale,
    cfg: &ClipConfig,
    data: DataSetup,
    n: u64,
) -> Result<()> {
    let b = args.batch_size.unwrap_or(sc.batch_size) as usize;
    let mut l = Loader::start(
        data.plan,
        data.store,
        LoaderOptions {
            batch_size: b,
            micro_batches: 1,
            rank: 0,
            world: 1,
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
    Ok(())
}

/// Where the weights come from: an exact resume of this run (`--resume latest` with a saved
/// state), a warm start from the previous step, an explicit `--resume PATH`, or scratch.
/// Decided on rank 0 (it looks at the run folder) and broadcast.
fn resolve_init(
    args: &TrainArgs,
    comm: &dyn Comm,
    run_dir: &RunDir,
    warm_start: Option<&PathBuf>,
) -> Result<Init> {
    let decided = if comm.rank() == 0 {
        let init = init_on_rank0(args, run_dir, warm_start)?;
        serde_json::to_vec(&init)?
    } else {
        Vec::new()
    };
    let bytes = comm.broadcast_bytes(0, decided)?;
    serde_json::from_slice(&bytes).context("the resume decision broadcast by rank 0")
}

fn init_on_rank0(args: &TrainArgs, run_dir: &RunDir, warm_start: Option<&PathBuf>) -> Result<Init> {
    if args.resume == "latest" {
        return Ok(if run_dir.state_json().exists() {
            Init::Resume(run_dir.state_json())
        } else if let Some(p) = warm_start {
            Init::Weights(p.clone())
        } else {
            Init::Scratch
        });
    }
    let p = PathBuf::from(&args.resume);
    if !p.exists() {
        bail!("--resume {}: no such file", p.display());
    }
    if p.extension().is_some_and(|e| e == "json") {
        if !args.new_run {
            return Ok(Init::Resume(p));
        }
        let (_, t) = crate::trainer::read_state(&p)?;
        let sd: StateDict = t
            .into_iter()
            .filter_map(|(k, v)| k.strip_prefix("model/").map(|n| (n.to_string(), v)))
            .collect();
        let tmp = run_dir.checkpoints().join("init_weights.safetensors");
        tic_model::checkpoint::write_safetensors_atomic(&sd, &tmp)?;
        return Ok(Init::Weights(tmp));
    }
    if !args.new_run {
        tracing::warn!(
            "--resume {}: a model file holds weights only; optimizer, schedule and step start fresh (as --new_run)",
            p.display()
        );
    }
    Ok(Init::Weights(p))
}

fn precision(name: &str) -> Result<Precision> {
    Ok(match name {
        "fp32" => Precision::Fp32,
        "bf16" | "amp_bf16" | "amp_bfloat16" => Precision::Bf16,
        other => bail!(
            "--precision {other:?} is not supported: use fp32 or bf16 (mixed bf16, f32 master weights)"
        ),
    })
}

fn options(
    args: &TrainArgs,
    sc: &Scale,
    cfg: &ClipConfig,
    budget: u64,
    stop: &StopSignal,
) -> Result<TrainOptions> {
    Ok(TrainOptions {
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
        precision: precision(&args.precision)?,
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
        zeroshot_frequency: args.controls.zeroshot_frequency,
        val: None,
        val_frequency: args.controls.val_frequency,
        delete_previous_checkpoint: args.controls.delete_previous_checkpoint,
        gather_with_grad: args.gather_with_grad,
        grad_checkpointing: args.grad_checkpointing,
        report: Report::from_args(args)?,
        stop: stop.clone(),
    })
}

/// `--val_data` on the writer (rank 0, the only one that evaluates), batched as OpenCLIP's val
/// loader: by the per-GPU batch size.
fn open_val(
    args: &TrainArgs,
    opts: &TrainOptions,
    world: usize,
    rank: usize,
) -> Result<Option<crate::val::ContrastiveVal>> {
    let Some(v) = args.controls.val_data.as_deref().filter(|_| rank == 0) else {
        return Ok(None);
    };
    let batch = opts.counts_for(world).loader_batch / world as u64;
    let n = args.controls.val_num_samples;
    crate::val::ContrastiveVal::open(v, n, batch as usize).map(Some)
}

/// Warns (rank 0) when --batch_size overrides the scale's.
fn warn_batch_override(args: &TrainArgs, sc: &Scale, rank: usize) {
    if let Some(b) = args.batch_size.filter(|&b| b != sc.batch_size && rank == 0) {
        tracing::warn!(
            "--batch_size {b} overrides scale {}'s {}: results are not comparable to the benchmark",
            sc.name,
            sc.batch_size
        );
    }
}

/// One rank's whole run: setup, training, summary files.
fn run_rank(args: &TrainArgs, comm: &dyn Comm, dev: &Device, stop: &StopSignal) -> Result<Outcome> {
    let (rank, world) = (comm.rank(), comm.size());
    let sc: &Scale = scale(&args.scale)?;
    let model_name = args.model.clone().unwrap_or_else(|| sc.model.to_string());
    let cfg = crate::scale::model_config(&model_name)?;
    warn_batch_override(args, sc, rank);
    let data = DataSetup::resolve(args, sc, rank)?;
    if let Some(n) = args.loader_benchmark {
        return loader_benchmark(args, sc, &cfg, data, n).map(|()| Outcome::Finished);
    }
    let exp_name = data.exp_name(args, sc);
    // Locked (one writer per run), local or in an object store (`crate::remote`).
    let mut folder = crate::remote::RunFolder::open(args, &exp_name, rank)?;
    folder.run = folder
        .run
        .clone()
        .with_local_log(args.controls.log_local.then_some(rank));
    let run_dir = &folder.run;
    announce_scheduler(run_dir);
    announce_ranks(comm, run_dir)?;
    let prev = data.previous_checkpoint(args);
    let prev_copy = crate::remote::fetch_if_remote(prev.as_deref())?;
    let prev = prev_copy.as_ref().map(|c| c.path().to_path_buf()).or(prev);
    let uses_prev = args.strategy.is_some_and(|s| s.warm_start()) && data.t > 0;
    if uses_prev {
        let p = prev.as_ref().expect("set above");
        if !p.exists() {
            bail!(
                "{}: the previous time step's checkpoint is missing; train step {} first or pass --prev_checkpoint",
                p.display(),
                data.t - 1
            );
        }
    }
    let init = resolve_init(args, comm, run_dir, prev.as_ref().filter(|_| uses_prev))?;
    let mut opts = options(args, sc, &cfg, data.budget, stop)?;
    check_batch_split(&opts, world, rank);
    opts.val = open_val(args, &opts, world, rank)?;
    if rank == 0 && data.plan.counts_known() && opts.global_batch > data.plan.pass_len() {
        tracing::warn!(
            "the global batch ({}) is larger than the training data ({} samples per pass): every step repeats samples",
            opts.global_batch,
            data.plan.pass_len()
        );
    }
    let params = params(args, &opts, &model_name, &exp_name, world)?;
    write_params(run_dir, &params, &opts)?;
    if let Some(w) = opts.report.wandb.as_mut() {
        w.config = params;
    }
    let teacher: Option<Clip> = match (args.strategy, &prev) {
        (Some(Strategy::Lwf), Some(p)) if data.t > 0 => Some(load_clip(&cfg, p, DType::F32, dev)?),
        _ => None,
    };
    let patch: Option<StateDict> = match (args.strategy, &prev) {
        (Some(Strategy::Patching), Some(p)) if data.t > 0 => Some(load_state_dict(p)?),
        _ => None,
    };
    let counts = opts.counts_for(world);
    run_dir.log(&format!(
        "tic-train {exp_name}: {} on {} shards ({} samples per pass, {:?}), {} steps of {} samples ({} epochs of {} steps), device {:?}, {} rank(s) ({})",
        model_name,
        data.shards.len(),
        if data.plan.counts_known() {
            data.plan.pass_len().to_string()
        } else {
            "counted when streamed: pipe: shards,".to_string()
        },
        data.plan.sampling(),
        counts.total_steps,
        counts.loader_batch * opts.accum_freq,
        counts.epochs,
        counts.steps_per_epoch,
        dev,
        world,
        comm.backend(),
    ));
    let summary = train_distributed(
        comm,
        &opts,
        data.plan.clone(),
        data.store.clone(),
        run_dir,
        &init,
        teacher.as_ref(),
        patch.as_ref(),
        dev,
    )?;
    if let Some(p) = summary.preempted {
        // Not finished: no info.json / compute.json (the completion markers) yet; the saved
        // state still goes to the store, so a requeued job elsewhere resumes from it.
        folder.finish()?;
        return Ok(Outcome::Preempted(p));
    }
    let latest = folder.latest_checkpoint();
    write_summary(run_dir, args, sc, &model_name, &summary, &latest)?;
    folder.finish()?;
    Ok(Outcome::Finished)
}

/// Under Slurm, records the job in out.log (job id, restart count after a requeue, step and
/// PMI flavour), so a run folder names the job whose `slurm-JOBID.out` holds its stderr.
fn announce_scheduler(run_dir: &RunDir) {
    let var = |k: &str| std::env::var(k).ok();
    let Some(job) = var("SLURM_JOB_ID") else {
        return;
    };
    // Slurm sets SLURM_RESTART_COUNT only once a job has been requeued.
    let restarts = var("SLURM_RESTART_COUNT").unwrap_or_else(|| "0".into());
    let mut line = format!("Slurm job {job}, restart {restarts}");
    for (k, what) in [
        ("SLURM_STEP_ID", "step "),
        ("SLURM_MPI_TYPE", "srun --mpi="),
    ] {
        if let Some(v) = var(k) {
            line.push_str(&format!(", {what}{v}"));
        }
    }
    run_dir.log(&line);
}

/// With several ranks: each rank says which process it is (stderr), and rank 0 records every
/// rank's pid in out.log, so a launcher's report of a killed pid names the rank.
fn announce_ranks(comm: &dyn Comm, run_dir: &RunDir) -> Result<()> {
    if comm.size() == 1 {
        return Ok(());
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    let pid = std::process::id();
    eprintln!(
        "tic-train: rank {} of {} is pid {pid} on {host} (local rank {})",
        comm.rank(),
        comm.size(),
        comm.local_rank()
    );
    let pids = comm.all_gather_u64(&[u64::from(pid)])?;
    run_dir.log(&format!(
        "{} ranks ({} backend); pids by rank: {pids:?}",
        comm.size(),
        comm.backend()
    ));
    Ok(())
}

/// Warns when the global batch does not split evenly over ranks and accumulation rounds
/// (DataComp floors the per-rank batch, so the global batch run is smaller).
fn check_batch_split(opts: &TrainOptions, world: usize, rank: usize) {
    let parts = world as u64 * opts.accum_freq.max(1);
    if rank == 0 && opts.global_batch % parts != 0 {
        tracing::warn!(
            "--batch_size {} is not a multiple of {world} ranks × {} accumulation rounds: each rank takes {} per round, a global batch of {}",
            opts.global_batch,
            opts.accum_freq,
            opts.global_batch / parts,
            opts.global_batch / parts * parts
        );
    }
}

fn write_summary(
    run_dir: &RunDir,
    args: &TrainArgs,
    sc: &Scale,
    model_name: &str,
    summary: &TrainSummary,
    latest: &str,
) -> Result<()> {
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
        "checkpoint": latest,
        "scale_config": sc,
        "data_dir": args.data_dir,
        "strategy": args.strategy,
        "model": model_name,
    });
    run_dir.write(INFO_FILE, serde_json::to_string_pretty(&info)?.as_bytes())?;
    // Training compute of this model (what `tic-metrics` reads as `{time}/compute.json`):
    // global samples, whatever the number of ranks.
    let compute = ComputeRecord::of_run(summary.steps, summary.batch, summary.finished);
    run_dir.write(records::COMPUTE_FILE, compute.to_json().as_bytes())
}

/// The run's parameters: the command line with the values the run resolved (`params.txt`,
/// `params.yaml`, the W&B run's config).
fn params(
    args: &TrainArgs,
    opts: &TrainOptions,
    model_name: &str,
    exp_name: &str,
    world: usize,
) -> Result<serde_json::Value> {
    let counts = opts.counts_for(world);
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
    m.insert("world_size".into(), world.into());
    m.insert(
        "batch_size_per_rank".into(),
        (counts.loader_batch / world as u64).into(),
    );
    Ok(v)
}

/// Writes `params.txt`, `params.yaml` and `model_config.json` (the writer only).
fn write_params(run: &RunDir, v: &serde_json::Value, opts: &TrainOptions) -> Result<()> {
    if !run.writer {
        return Ok(());
    }
    let m = v.as_object().expect("params are an object");
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
    run.write(PARAMS_FILE, txt.as_bytes())?;
    run.write("params.yaml", serde_yaml::to_string(v)?.as_bytes())?;
    run.write(MODEL_CONFIG_FILE, opts.model.to_json_string().as_bytes())
}
