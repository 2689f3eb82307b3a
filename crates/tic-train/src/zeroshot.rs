//! `--imagenet_val`: zero-shot classification of the model being trained, at the end of every
//! epoch, on any WebDataset classification set in CLIP_benchmark's layout (ImageNet-1k val made
//! by `tic-reshard` + `tic-wds-convert`, a DataCompNet year, the synthetic static set, …).
//!
//! Recorded as OpenCLIP records its ImageNet zero-shot validation: one JSON line per evaluation
//! in `checkpoints/results.jsonl` with `imagenet-zeroshot-val-top1` / `-top5` (plus `epoch`,
//! `step`, `num_samples`), and an `Eval Epoch: N imagenet-zeroshot-val-top1: …` line in
//! `out.log`. The metrics are tic-eval's (the same code as `tic-eval` on that set).

use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use serde_json::{json, Value};
use tic_eval::evalset::{EvalSet, SetKind};
use tic_eval::evaluate::{evaluate_set, TaskOptions};
use tic_model::embed::{ClipEncoder, EmbedOptions};
use tic_model::Clip;
use tic_shards::evalset_layout::{DATACOMP_SPLIT, NSHARDS_FILE};

/// A classification set to evaluate on during training.
#[derive(Debug, Clone)]
pub struct ZeroShotVal {
    /// The opened set (its shards are read at each evaluation).
    pub set: EvalSet,
    /// Images / prompts per forward pass.
    pub batch_size: usize,
    /// Decode threads.
    pub workers: usize,
}

/// One evaluation's result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZeroShotResult {
    /// Top-1 accuracy in [0, 1].
    pub top1: f64,
    /// Top-5 accuracy in [0, 1].
    pub top5: f64,
    /// Images evaluated.
    pub num_samples: usize,
}

impl ZeroShotVal {
    /// The set at `dir`: its shards in `dir/test/` (DataComp layout) or in `dir/` (TiC layout).
    /// Opens it once to fail before training when it is missing or not a classification set.
    pub fn open(dir: &Path, batch_size: usize, workers: usize) -> Result<Self> {
        let split = if dir.join(DATACOMP_SPLIT).join(NSHARDS_FILE).is_file() {
            DATACOMP_SPLIT
        } else if dir.join(NSHARDS_FILE).is_file() {
            ""
        } else {
            bail!(
                "--imagenet_val {}: no nshards.txt in it or in its test/ folder (a WebDataset \
                 classification set in CLIP_benchmark layout: tic-reshard + tic-wds-convert ... \
                 classification)",
                dir.display()
            );
        };
        let set = EvalSet::open(dir, split, Some(SetKind::Classification))
            .with_context(|| format!("--imagenet_val {}", dir.display()))?;
        Ok(Self {
            set,
            batch_size: batch_size.max(1),
            workers: workers.max(1),
        })
    }

    /// Evaluates `model` (f32 features on `device`).
    pub fn evaluate(&self, model: Clip, device: &Device) -> Result<ZeroShotResult> {
        let enc = ClipEncoder {
            model,
            device: device.clone(),
        };
        let opts = TaskOptions {
            embed: Some(EmbedOptions {
                batch_size: self.batch_size,
                num_workers: self.workers,
            }),
            ..TaskOptions::default()
        };
        let r = evaluate_set(&enc, &self.set, "imagenet-val", &opts, &|_, _| {})?;
        let get = |k: &str| -> Result<f64> {
            r.metrics
                .get(k)
                .and_then(Value::as_f64)
                .with_context(|| format!("zero-shot metrics have no {k:?}"))
        };
        Ok(ZeroShotResult {
            top1: get("acc1")?,
            top5: get("acc5")?,
            num_samples: r.num_samples,
        })
    }
}

/// Where the records go, in the run's `checkpoints/` (OpenCLIP's name).
pub const RESULTS_FILE: &str = "results.jsonl";

/// The lines of a `results.jsonl` that parse as JSON (a torn last line is left out), for each
/// kind of record to pick its own. A missing file has none.
pub fn result_lines(path: &Path) -> Result<Vec<Value>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

impl ZeroShotResult {
    /// The `results.jsonl` record (OpenCLIP's keys, plus where in training it was taken).
    pub fn record(&self, epoch: u64, step: u64) -> Value {
        json!({
            "imagenet-zeroshot-val-top1": self.top1,
            "imagenet-zeroshot-val-top5": self.top5,
            "epoch": epoch,
            "step": step,
            "num_samples": self.num_samples,
        })
    }

    /// Reads back the records of a `results.jsonl` written by [`ZeroShotResult::record`], as
    /// `(epoch, step, result)`; lines that are not such records (a torn last line, another
    /// tool's keys) are left out. A missing file has none.
    pub fn read_records(path: &Path) -> Result<Vec<(u64, u64, Self)>> {
        let parse = |v: &Value| -> Option<(u64, u64, Self)> {
            let result = Self {
                top1: v["imagenet-zeroshot-val-top1"].as_f64()?,
                top5: v["imagenet-zeroshot-val-top5"].as_f64()?,
                num_samples: v["num_samples"].as_u64()? as usize,
            };
            Some((v["epoch"].as_u64()?, v["step"].as_u64()?, result))
        };
        Ok(result_lines(path)?.iter().filter_map(parse).collect())
    }

    /// The `out.log` line (OpenCLIP's `Eval Epoch:` format).
    pub fn log_line(&self, epoch: u64) -> String {
        format!(
            "Eval Epoch: {epoch} imagenet-zeroshot-val-top1: {:.4}\timagenet-zeroshot-val-top5: {:.4}",
            self.top1, self.top5
        )
    }
}
