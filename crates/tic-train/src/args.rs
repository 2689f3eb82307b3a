//! The `tic-train` command line: DataComp's `train.py` flags (with the TiC patch) plus the
//! continual strategies and the data-parallel options. See docs/train.md and
//! docs/distributed.md.

use std::path::PathBuf;

use clap::Parser;
use serde::Serialize;

use crate::strategy::Strategy;

/// `tic-train`'s arguments.
#[derive(Parser, Debug, Clone, Serialize)]
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
starts load OUTPUT_DIR/STRATEGY_PREVSPLIT/checkpoints/epoch_latest.safetensors.\n\n\
Data parallel (a build with --features mpi): `mpirun -np W tic-train ...` or `srun --mpi=pmi2 tic-train ...` (MPICH; `--mpi=pmix` for Open MPI); \
--batch_size stays the global batch (W ranks x accum_freq rounds x per-rank batch), rank 0 writes the run \
folder, and rerunning the same command resumes. See docs/distributed.md."
)]
pub struct TrainArgs {
    /// Compute scale: tic_debug, tic_medium, tic_large, tic_xlarge (TiC patch values) or tiny (CPU tests/demo).
    #[arg(long)]
    pub scale: String,
    /// Shard folders or .tar files, several joined by `::` (local paths or object-store URLs),
    /// or webdataset `pipe:CMD` URLs with brace patterns, e.g.
    /// `pipe:aws s3 cp s3://b/{00000000..00001023}.tar -` (one `sh -c` per shard; such shards
    /// have no sizes.json, so they need --dataset_resampled with --train_num_samples).
    #[arg(long)]
    pub data_dir: String,
    /// Train on resharded splits whose meta.json says `"complete": false` (tic-reshard lost
    /// input shards or shard tails): accept the loss instead of refusing the folder.
    #[arg(long)]
    pub accept_incomplete: bool,
    /// Sampling weight per --data_dir entry, joined by `::` (per shard, with replacement only).
    #[arg(long)]
    pub data_weights: Option<String>,
    /// Where runs are written: a folder, or an object-store URL (`s3://bucket/prefix`: the run
    /// is written through a local staging folder and uploaded as it goes; `--resume latest`
    /// reads it back from the store).
    #[arg(long)]
    pub output_dir: PathBuf,
    /// Local working folder of a run whose --output_dir is an object store (default: under the
    /// system's temporary folder). Emptied at start and refilled from the store.
    #[arg(long, value_name = "DIR")]
    pub staging_dir: Option<PathBuf>,
    /// Keep a copy of the local run folder in an object store, OUTPUT_DIR/EXP_NAME copied to
    /// URL/EXP_NAME (OpenCLIP's --remote-sync); --resume latest reads the run back from there
    /// when the local folder has no state.
    #[arg(long, value_name = "URL")]
    pub remote_sync: Option<String>,
    /// Seconds between uploads of the run folder to the store (OpenCLIP's default).
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub remote_sync_frequency: u64,
    /// OpenCLIP's --remote-sync-protocol, accepted for its command lines: both go through the
    /// object_store crate.
    #[arg(long, default_value = "s3", value_parser = ["s3", "fsspec"])]
    pub remote_sync_protocol: String,
    /// An object-store run's lock is taken over when its holder's heartbeat is older than this
    /// many seconds (or at once when the holder ran on this host and its process is gone).
    #[arg(long, default_value_t = 900, value_name = "SECONDS")]
    pub remote_lock_timeout: u64,
    /// Run name (default: SCALE_scale, or STRATEGY_LASTSPLIT with --strategy).
    #[arg(long)]
    pub exp_name: Option<String>,
    /// Model architecture (overrides the scale's): an OpenCLIP name or a model-config JSON file.
    #[arg(long)]
    pub model: Option<String>,
    /// Global batch size (overrides the scale's; results are then not comparable).
    #[arg(long)]
    pub batch_size: Option<u64>,
    /// Peak learning rate (overrides the scale's).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Samples seen in this run (overrides the scale's per-step budget).
    #[arg(long)]
    pub train_num_samples: Option<u64>,
    /// Warmup steps (overrides the scale's).
    #[arg(long)]
    pub warmup: Option<u64>,
    /// Sample shards with replacement (OpenCLIP resampled shards; what DataComp always did).
    /// Without it, every sample is seen exactly once per pass.
    #[arg(long)]
    pub dataset_resampled: bool,
    /// With --resume PATH: load weights only (fresh optimizer, schedule and step).
    #[arg(long)]
    pub new_run: bool,
    /// `latest` (continue this run if it has a saved state) or a checkpoint: a train_state.json
    /// (exact resume) or model weights (.safetensors or OpenCLIP epoch_N.pt: weights only).
    #[arg(long, default_value = "latest")]
    pub resume: String,
    /// Number of checkpoints ("epochs") the budget is cut into (DataComp default 5).
    #[arg(long, default_value_t = 5)]
    pub num_checkpoints: u64,
    /// Keep epoch_N every this many epochs (0: the last only), as OpenCLIP.
    #[arg(long, default_value_t = 0)]
    pub save_frequency: u64,
    /// Also save a resumable state every this many steps (0: at epoch ends only).
    #[arg(long, default_value_t = 0)]
    pub checkpoint_every: u64,
    /// Random seed (model init, data order, augmentation).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// fp32, or bf16 (mixed: bf16 compute, f32 master weights; `amp_bf16` is accepted too).
    #[arg(long, default_value = "fp32")]
    pub precision: String,
    /// Clip the global gradient norm.
    #[arg(long)]
    pub grad_clip_norm: Option<f64>,
    /// Gradient accumulation rounds per optimizer step.
    #[arg(long, default_value_t = 1)]
    pub accum_freq: u64,
    /// Zero-shot classification set evaluated at the end of every epoch, as OpenCLIP's ImageNet
    /// validation: any WebDataset classification set in CLIP_benchmark layout (shards in DIR/test/
    /// or DIR/). Results go to checkpoints/results.jsonl (imagenet-zeroshot-val-top1/top5) and
    /// out.log.
    #[arg(long, value_name = "DIR")]
    pub imagenet_val: Option<PathBuf>,
    /// Images / prompts per forward pass of the --imagenet_val evaluation.
    #[arg(long, default_value_t = 64)]
    pub imagenet_val_batch_size: usize,
    /// Loader worker threads (OpenCLIP also rounds the batches per epoch to a multiple of it).
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// Report the training curves (--report_to) every this many steps of an epoch, and at its
    /// last step, as OpenCLIP (metrics.jsonl gets every step).
    #[arg(long, default_value_t = 100)]
    pub log_every_n_steps: u64,
    /// Where to report the training curves besides metrics.jsonl (OpenCLIP's `--report-to`):
    /// `tensorboard` (event files in RUN/tensorboard/, OpenCLIP's scalar names), `wandb`,
    /// `all`, or several joined by commas; empty or `none`: nowhere.
    #[arg(long, default_value = "", value_name = "NAMES")]
    pub report_to: String,
    /// DataComp's flag: the same as adding `wandb` to --report_to.
    #[arg(long)]
    pub report_to_wandb: bool,
    /// The W&B project of --report_to wandb (DataComp's default).
    #[arg(long, default_value = "datanet")]
    pub wandb_project_name: String,
    /// Notes of the W&B run.
    #[arg(long, default_value = "")]
    pub wandb_notes: String,
    /// Continual-learning strategy; --data_dir then lists every time split so far, oldest first.
    #[arg(long, value_enum)]
    pub strategy: Option<Strategy>,
    /// How many leading --data_dir entries form the first time step (TiC: 2014+2015+2016 = 3).
    #[arg(long, default_value_t = 1)]
    pub first_step_splits: usize,
    /// Previous step's model for warm starts, LwF and patching (default: found by name).
    #[arg(long)]
    pub prev_checkpoint: Option<PathBuf>,
    /// Weight of the LwF distillation loss.
    #[arg(long, default_value_t = 1.0)]
    pub lwf_weight: f64,
    /// Patching: weight α of the newly trained model in θ = (1−α)·θ_prev + α·θ_new.
    #[arg(long, default_value_t = 0.5)]
    pub patching_alpha: f64,
    /// Shards mixed per shuffle block.
    #[arg(long, default_value_t = 8)]
    pub shards_per_block: usize,
    /// Batches prepared ahead.
    #[arg(long, default_value_t = 4)]
    pub prefetch: usize,
    /// Most disk space the copies of streamed shards (`pipe:` and object-store URLs) take on
    /// each rank, in the scratch folder under TMPDIR: bytes with an optional K/M/G/T suffix
    /// (powers of 1024), or `auto` = 2 x --shards_per_block + 2 shards of the largest size
    /// seen. Staging waits at the limit; each copy is deleted once the rank is done with it.
    #[arg(long, default_value = "auto", value_parser = scratch_limit, value_name = "SIZE")]
    pub scratch_limit: String,
    /// cpu, cuda, or auto.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Only time the data loader for this many batches (no training), then exit.
    #[arg(long)]
    pub loader_benchmark: Option<u64>,
    /// Gradient checkpointing: each residual block of both towers keeps only its input during
    /// the forward pass and is recomputed during the backward pass (one extra forward pass per
    /// step, much less activation memory; the same numbers). DataComp always sets it.
    #[arg(long)]
    pub grad_checkpointing: bool,
    /// Backpropagate through the feature all-gather of data-parallel training (OpenCLIP
    /// `--gather-with-grad`, which DataComp always sets). `false` only differentiates each
    /// rank's own features' terms: a different gradient, for comparison.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub gather_with_grad: bool,
    /// Collectives under mpirun/srun: `auto` (NCCL on CUDA devices when built with the `nccl`
    /// feature, else MPI), `mpi`, or `nccl`.
    #[arg(long, default_value = "auto", value_parser = ["auto", "mpi", "nccl"])]
    pub dist_backend: String,
    /// OpenCLIP's evaluation, logging and checkpoint controls.
    #[command(flatten)]
    #[serde(flatten)]
    pub controls: crate::controls::RunControls,
    /// Quieter (no progress bar).
    #[arg(short, long)]
    pub quiet: bool,
}

/// Checks `--scratch_limit` (`auto` or a size) when the command line is parsed.
fn scratch_limit(s: &str) -> Result<String, String> {
    s.parse::<crate::scratch::ScratchLimit>()
        .map(|_| s.to_string())
        .map_err(|e| format!("{e:#}"))
}
