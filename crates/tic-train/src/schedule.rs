//! OpenCLIP's learning-rate schedule and step counts (`training/scheduler.py`, `data.py`,
//! `main.py` at v2.24.0).

/// `cosine_lr`: linear warmup `base_lr·(step+1)/warmup` for `step < warmup`, then
/// `½(1 + cos(π·(step−warmup)/(steps−warmup)))·base_lr`.
pub fn cosine_lr(base_lr: f64, warmup: u64, steps: u64, step: u64) -> f64 {
    if step < warmup {
        base_lr * (step + 1) as f64 / warmup as f64
    } else {
        let e = (step - warmup) as f64;
        let es = steps as f64 - warmup as f64;
        0.5 * (1.0 + (std::f64::consts::PI * e / es).cos()) * base_lr
    }
}

/// How a training run is cut into optimizer steps, exactly as DataComp + OpenCLIP do it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepCounts {
    /// Samples per loader batch (per-GPU batch × world size = global batch / accum_freq).
    pub loader_batch: u64,
    /// Loader batches per "epoch" (checkpoint interval), rounded up to a multiple of `workers`.
    pub batches_per_epoch: u64,
    /// Optimizer steps per epoch (`batches_per_epoch // accum_freq`).
    pub steps_per_epoch: u64,
    /// Number of epochs (= DataComp's `--num_checkpoints`).
    pub epochs: u64,
    /// Total optimizer steps (the schedule length).
    pub total_steps: u64,
}

impl StepCounts {
    /// DataComp passes `train_num_samples // num_checkpoints` per epoch and
    /// `global_batch // (world·accum)` per GPU; OpenCLIP's `get_wds_dataset` computes
    /// `ceil(samples / batch)` batches, rounds them up to a multiple of `workers`, and `main.py`
    /// runs `(batches // accum_freq) · epochs` steps.
    pub fn new(
        train_num_samples: u64,
        global_batch: u64,
        num_checkpoints: u64,
        workers: u64,
        accum_freq: u64,
        world_size: u64,
    ) -> Self {
        let accum = accum_freq.max(1);
        let world = world_size.max(1);
        let per_gpu = global_batch / (world * accum);
        let loader_batch = per_gpu * world;
        let per_epoch = train_num_samples / num_checkpoints;
        let nb = per_epoch.div_ceil(loader_batch.max(1));
        let w = workers.max(1);
        let batches_per_epoch = nb.div_ceil(w) * w;
        let steps_per_epoch = batches_per_epoch / accum;
        Self {
            loader_batch,
            batches_per_epoch,
            steps_per_epoch,
            epochs: num_checkpoints,
            total_steps: steps_per_epoch * num_checkpoints,
        }
    }
}
