//! OpenCLIP's run controls (`training/params.py`, v2.24.0) that a TiC run uses besides
//! DataComp's flags: how often the evaluations run (`--zeroshot_frequency`, `--val_data` with
//! `--val_frequency` / `--val_num_samples`), per-rank logs (`--log_local`) and which epoch
//! checkpoints are kept (`--delete_previous_checkpoint`, `--save_most_recent`).
//!
//! Their own flag group (flattened into [`crate::args::TrainArgs`]) so that the command line's
//! main table stays DataComp's. None of them changes the training numbers: they only decide
//! what is evaluated, logged and kept.

use clap::Args;
use serde::Serialize;

/// OpenCLIP's evaluation, logging and checkpoint-keeping controls.
#[derive(Args, Debug, Clone, Serialize)]
#[command(rename_all = "snake_case")]
pub struct RunControls {
    /// Run the --imagenet_val zero-shot evaluation every this many epochs and after the last
    /// (0: never), as OpenCLIP's --zeroshot-frequency; its default 2 is what DataComp's
    /// train.py runs (it does not pass the flag).
    #[arg(long, default_value_t = 2, value_name = "EPOCHS")]
    pub zeroshot_frequency: u64,
    /// Held-out image-text shards (--data_dir's syntax) for OpenCLIP's contrastive validation:
    /// the loss and image/text retrieval ranks and recalls (results.jsonl and --report_to as
    /// val/clip_val_loss, val/image_to_text_R@1, ...), embedded in batches of the per-rank
    /// training batch.
    #[arg(long, value_name = "SHARDS")]
    pub val_data: Option<String>,
    /// Run the --val_data evaluation every this many epochs and after the last (0: never).
    #[arg(long, default_value_t = 1, value_name = "EPOCHS")]
    pub val_frequency: u64,
    /// Evaluate the first this many --val_data samples (default: all). OpenCLIP only uses the
    /// number for its progress log and reads every val shard; here it caps the set.
    #[arg(long, value_name = "N")]
    pub val_num_samples: Option<u64>,
    /// Every rank also writes its own log lines to out-{rank}.log in the run folder (OpenCLIP
    /// writes out-{rank} from each node's first rank); rank 0 still writes out.log.
    #[arg(long)]
    pub log_local: bool,
    /// Delete checkpoints/epoch_{N-1}.safetensors after saving epoch_N, as OpenCLIP. Never
    /// touches epoch_latest or the resumable state (train_state.json and its tensors), which
    /// is all a resume reads; an object-store copy keeps the deleted files (OpenCLIP's
    /// `aws s3 sync` does not delete either).
    #[arg(long)]
    pub delete_previous_checkpoint: bool,
    /// Accepted for OpenCLIP's command lines: epoch_latest.safetensors is always written (with
    /// the resumable state) after every checkpoint, and --resume latest always reads it.
    #[arg(long)]
    pub save_most_recent: bool,
}

/// The log file of rank `rank` under `--log_local`.
pub fn local_log_name(rank: usize) -> String {
    format!("out-{rank}.log")
}
