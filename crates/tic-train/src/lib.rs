//! Continual CLIP training in Candle: the trainer behind `tic-train`, a drop-in for DataComp's
//! `train.py` (+ OpenCLIP `training/main.py` with the TiC patch) that also runs every TiC-CLIP
//! continual-learning strategy.
//!
//! - [`shards`]: `--data_dir` / `--data_weights` expansion (DataComp `get_input_shards`) with
//!   sample counts from `sizes.json`;
//! - [`plan`]: the deterministic, resumable sample order (with / without replacement);
//! - [`loader`]: worker-thread decoding, augmentation and tokenization with prefetch;
//! - [`loss`], [`optim`], [`schedule`]: OpenCLIP's loss, AdamW groups, clipping and cosine
//!   schedule;
//! - [`scale`]: the `--scale` table; [`strategy`]: the continual strategies;
//! - [`step`]: one optimizer step's gradient on one rank of W (gathered loss, backward,
//!   gradient all-reduce); [`trainer`]: the loop; [`state`]: the run folder, checkpoints and
//!   exact resume; [`records`]: the typed `metrics.jsonl`, `compute.json` and
//!   `train_state.json`; [`setup`]: from the command line to a run (strategies, warm starts);
//! - [`eval`]: retrieval on a set of samples (training-split sanity check);
//! - [`zeroshot`]: `--imagenet_val`, zero-shot classification every `--zeroshot_frequency`
//!   epochs; [`val`]: `--val_data`, OpenCLIP's contrastive validation (loss, retrieval ranks);
//! - [`report`]: `--report_to tensorboard,wandb`, OpenCLIP's training curves as TensorBoard
//!   event files ([`tensorboard`]: the event-file format) and W&B offline runs ([`wandb`]: the
//!   `.wandb` transaction log);
//! - [`remote`]: run folders in object stores (`--output_dir s3://…`, `--remote_sync`), uploaded
//!   from a local folder, read back by `--resume latest`, locked by a conditional PUT;
//! - [`preempt`]: SIGTERM / SIGINT → save and exit 75, agreed by every rank; [`scratch`]: the
//!   bounded scratch folder of streamed shards (`--scratch_limit`).

pub mod args;
pub mod controls;
pub mod eval;
pub mod loader;
pub mod loss;
pub mod optim;
pub mod plan;
pub mod preempt;
pub mod records;
pub mod remote;
pub mod report;
pub mod scale;
pub mod schedule;
pub mod scratch;
pub mod setup;
pub mod shards;
pub mod state;
pub mod step;
pub mod strategy;
pub mod tensorboard;
pub mod trainer;
pub mod val;
pub mod wandb;
pub mod zeroshot;
