//! `--val_data`: OpenCLIP's contrastive validation (`training/train.py` `evaluate` and
//! `get_clip_metrics`, v2.24.0) on held-out image-text shards, at the epochs `--val_frequency`
//! picks.
//!
//! The held-out samples are embedded with the eval transform (the embedding of
//! [`crate::eval::embed_pairs`]) in batches of the per-rank training batch, as OpenCLIP's val
//! loader does; the loss is OpenCLIP's per-batch symmetric cross-entropy weighted by batch
//! size, and the retrieval ranks over the whole set are tic-eval's
//! ([`RetrievalRanks`], each caption's own image as its only positive), from which OpenCLIP's
//! mean / median rank and R@1/5/10 are taken. Proven against OpenCLIP's own `evaluate` on fixed
//! features in `tests/val_metrics.rs`.
//!
//! Recorded as OpenCLIP records them: one line per evaluation in `checkpoints/results.jsonl`
//! (OpenCLIP's keys, plus `step`), an `Eval Epoch:` line in `out.log`, and `val/…` scalars for
//! `--report_to`.

use anyhow::{bail, Context, Result};
use candle_core::Device;
use serde_json::{json, Map, Value};
use tic_eval::matrix::{Matrix, DEFAULT_BLOCK_ELEMS};
use tic_eval::metrics::retrieval::RetrievalRanks;
use tic_model::Clip;

use crate::loader::ShardStore;
use crate::plan::SampleId;

/// The recall cut-offs of OpenCLIP's `get_clip_metrics`.
pub const VAL_RECALL_KS: [usize; 3] = [1, 5, 10];

/// OpenCLIP's val metrics in its order: (`results.jsonl` key, reported `val/` tag).
const METRIC_NAMES: [(&str, &str); 13] = [
    ("image_to_text_mean_rank", "val/image_to_text_mean_rank"),
    ("image_to_text_median_rank", "val/image_to_text_median_rank"),
    ("image_to_text_R@1", "val/image_to_text_R@1"),
    ("image_to_text_R@5", "val/image_to_text_R@5"),
    ("image_to_text_R@10", "val/image_to_text_R@10"),
    ("text_to_image_mean_rank", "val/text_to_image_mean_rank"),
    ("text_to_image_median_rank", "val/text_to_image_median_rank"),
    ("text_to_image_R@1", "val/text_to_image_R@1"),
    ("text_to_image_R@5", "val/text_to_image_R@5"),
    ("text_to_image_R@10", "val/text_to_image_R@10"),
    ("clip_val_loss", "val/clip_val_loss"),
    ("epoch", "val/epoch"),
    ("num_samples", "val/num_samples"),
];

/// One direction's ranks summarised as `get_clip_metrics` does (ranks counted from 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankSummary {
    /// `preds.mean() + 1`.
    pub mean_rank: f64,
    /// `floor(median(preds)) + 1`.
    pub median_rank: f64,
    /// `mean(preds < k)` for k in [`VAL_RECALL_KS`].
    pub recall: [f64; 3],
}

impl RankSummary {
    /// From 0-based ranks of the positives (non-empty).
    pub fn from_ranks(ranks: &[usize]) -> Self {
        let n = ranks.len().max(1) as f64;
        let mut sorted = ranks.to_vec();
        sorted.sort_unstable();
        let m = sorted.len();
        let median = match m {
            0 => f64::NAN,
            _ if m % 2 == 1 => sorted[m / 2] as f64,
            _ => (sorted[m / 2 - 1] as f64 + sorted[m / 2] as f64) / 2.0,
        };
        Self {
            mean_rank: ranks.iter().map(|&r| r as f64).sum::<f64>() / n + 1.0,
            median_rank: median.floor() + 1.0,
            recall: VAL_RECALL_KS.map(|k| ranks.iter().filter(|&&r| r < k).count() as f64 / n),
        }
    }
}

/// One contrastive validation's metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValMetrics {
    /// Image → text ranks.
    pub image_to_text: RankSummary,
    /// Text → image ranks.
    pub text_to_image: RankSummary,
    /// The mean over samples of each batch's symmetric contrastive loss.
    pub clip_val_loss: f64,
    /// Samples evaluated.
    pub num_samples: usize,
}

/// Each batch's CLIP loss `(CE(s·I·Tᵀ) + CE(s·T·Iᵀ)) / 2` with the diagonal as labels, as
/// OpenCLIP's `evaluate` computes it (f32 logits, the reduction in f64), in rows of `dim`.
fn batch_loss(images: &[f32], texts: &[f32], dim: usize, scale: f32) -> f64 {
    let n = images.len() / dim;
    let logits: Vec<f32> = (0..n * n)
        .map(|k| {
            let (i, j) = (k / n, k % n);
            let dot: f32 = images[i * dim..(i + 1) * dim]
                .iter()
                .zip(&texts[j * dim..(j + 1) * dim])
                .map(|(a, b)| a * b)
                .sum();
            scale * dot
        })
        .collect();
    let ce = |row: &dyn Fn(usize) -> f64, target: usize| -> f64 {
        let max = (0..n).map(row).fold(f64::NEG_INFINITY, f64::max);
        let lse = max + (0..n).map(|j| (row(j) - max).exp()).sum::<f64>().ln();
        lse - row(target)
    };
    let mut total = 0.0;
    for i in 0..n {
        total += ce(&|j| logits[i * n + j] as f64, i);
        total += ce(&|j| logits[j * n + i] as f64, i);
    }
    total / (2.0 * n as f64)
}

impl ValMetrics {
    /// The metrics of paired, L2-normalised features (`n × dim` each, row `i` of both one
    /// sample) with the model's `logit_scale.exp()`, the loss taken per batch of `batch` rows.
    pub fn from_features(
        images: &[f32],
        texts: &[f32],
        dim: usize,
        scale: f32,
        batch: usize,
    ) -> Result<Self> {
        let n = images.len() / dim.max(1);
        if n == 0 || images.len() != n * dim || texts.len() != images.len() {
            bail!(
                "val features: {} image and {} text values for dimension {dim}",
                images.len(),
                texts.len()
            );
        }
        let im = Matrix::new(n, dim, images.to_vec())?;
        let tx = Matrix::new(n, dim, texts.to_vec())?;
        let own: Vec<usize> = (0..n).collect();
        let ranks = RetrievalRanks::compute(&im, &tx, &own, DEFAULT_BLOCK_ELEMS)?;
        let i2t: Vec<usize> = ranks.image_to_text.iter().map(|r| r.unwrap_or(n)).collect();
        let rows = batch.max(1) * dim;
        let cumulative: f64 = images
            .chunks(rows)
            .zip(texts.chunks(rows))
            .map(|(i, t)| batch_loss(i, t, dim, scale) * (i.len() / dim) as f64)
            .sum();
        Ok(Self {
            image_to_text: RankSummary::from_ranks(&i2t),
            text_to_image: RankSummary::from_ranks(&ranks.text_to_image),
            clip_val_loss: cumulative / n as f64,
            num_samples: n,
        })
    }

    /// OpenCLIP's metric names and values, in its order (`results.jsonl`'s keys).
    pub fn metrics(&self, epoch: u64) -> Vec<(&'static str, f64)> {
        let dir = |r: &RankSummary| {
            [
                r.mean_rank,
                r.median_rank,
                r.recall[0],
                r.recall[1],
                r.recall[2],
            ]
        };
        let values = dir(&self.image_to_text)
            .into_iter()
            .chain(dir(&self.text_to_image))
            .chain([self.clip_val_loss, epoch as f64, self.num_samples as f64]);
        METRIC_NAMES
            .iter()
            .map(|(name, _)| *name)
            .zip(values)
            .collect()
    }

    /// The same as `val/…` scalars for `--report_to` (OpenCLIP's `log_data`).
    pub fn scalars(&self, epoch: u64) -> Vec<(&'static str, f64)> {
        METRIC_NAMES
            .iter()
            .map(|(_, tag)| *tag)
            .zip(self.metrics(epoch).into_iter().map(|(_, v)| v))
            .collect()
    }

    /// The `results.jsonl` record: OpenCLIP's keys, plus the step it was taken after.
    pub fn record(&self, epoch: u64, step: u64) -> Value {
        let mut m: Map<String, Value> = self
            .metrics(epoch)
            .into_iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        m.insert("epoch".into(), json!(epoch));
        m.insert("num_samples".into(), json!(self.num_samples));
        m.insert("step".into(), json!(step));
        Value::Object(m)
    }

    /// Reads back the records of [`ValMetrics::record`] from a `results.jsonl` as
    /// `(epoch, step, metrics)`; other lines (zero-shot records, a torn last line) are left
    /// out. A missing file has none.
    pub fn read_records(path: &std::path::Path) -> Result<Vec<(u64, u64, Self)>> {
        let parse = |v: &Value| -> Option<(u64, u64, Self)> {
            let dir = |name: &str| -> Option<RankSummary> {
                let g = |k: &str| v[format!("{name}_{k}")].as_f64();
                Some(RankSummary {
                    mean_rank: g("mean_rank")?,
                    median_rank: g("median_rank")?,
                    recall: [g("R@1")?, g("R@5")?, g("R@10")?],
                })
            };
            let m = Self {
                image_to_text: dir("image_to_text")?,
                text_to_image: dir("text_to_image")?,
                clip_val_loss: v["clip_val_loss"].as_f64()?,
                num_samples: v["num_samples"].as_u64()? as usize,
            };
            Some((v["epoch"].as_u64()?, v["step"].as_u64()?, m))
        };
        Ok(crate::zeroshot::result_lines(path)?
            .iter()
            .filter_map(parse)
            .collect())
    }

    /// The `out.log` line (OpenCLIP's `Eval Epoch:` format).
    pub fn log_line(&self, epoch: u64) -> String {
        let parts: Vec<String> = self
            .metrics(epoch)
            .iter()
            .map(|(k, v)| format!("{k}: {v:.4}"))
            .collect();
        format!("Eval Epoch: {epoch} {}", parts.join("\t"))
    }
}

/// Whether an OpenCLIP evaluation every `frequency` epochs runs after `epoch` of `epochs`
/// (`--zeroshot_frequency`, `--val_frequency`): 0 never, else at multiples and the last.
pub fn due(frequency: u64, epoch: u64, epochs: u64) -> bool {
    frequency > 0 && (epoch % frequency == 0 || epoch == epochs)
}

/// The held-out set of `--val_data`.
#[derive(Clone)]
pub struct ContrastiveVal {
    store: ShardStore,
    ids: Vec<SampleId>,
    batch: usize,
}

impl std::fmt::Debug for ContrastiveVal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ContrastiveVal({} samples, batch {})",
            self.ids.len(),
            self.batch
        )
    }
}

impl ContrastiveVal {
    /// The shards of `val_data` (`--data_dir`'s syntax), in order, their first `num_samples`
    /// samples (all without it); embedded `batch` at a time. Opens the shards it needs now (a
    /// streamed one is copied once), so that a missing or broken one fails before training.
    pub fn open(val_data: &str, num_samples: Option<u64>, batch: usize) -> Result<Self> {
        let shards = crate::shards::input_shards(val_data, None)
            .with_context(|| format!("--val_data {val_data}"))?;
        let store = ShardStore::new(shards.iter().map(|s| s.location.clone()).collect());
        let cap = num_samples.unwrap_or(u64::MAX) as usize;
        let mut ids = Vec::new();
        for i in 0..shards.len() as u32 {
            if ids.len() >= cap {
                break;
            }
            let n = store
                .get(i)
                .with_context(|| format!("--val_data {val_data}"))?
                .len();
            ids.extend(
                (0..n as u32)
                    .map(|index| SampleId { shard: i, index })
                    .take(cap - ids.len()),
            );
        }
        if ids.is_empty() {
            bail!("--val_data {val_data}: no samples");
        }
        Ok(Self {
            store,
            ids,
            batch: batch.max(1),
        })
    }

    /// Samples evaluated each time.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are none (never after [`ContrastiveVal::open`]).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Evaluates `model` (f32, on `device`).
    pub fn evaluate(&self, model: &Clip, device: &Device) -> Result<ValMetrics> {
        let (i, t) = crate::eval::embed_pairs(model, &self.store, &self.ids, device, self.batch)?;
        let dim = i.dim(1)?;
        let scale: f32 = model
            .logit_scale
            .exp()?
            .to_dtype(candle_core::DType::F32)?
            .to_scalar()?;
        let flat = |x: candle_core::Tensor| -> Result<Vec<f32>> {
            Ok(x.to_dtype(candle_core::DType::F32)?
                .flatten_all()?
                .to_vec1()?)
        };
        ValMetrics::from_features(&flat(i)?, &flat(t)?, dim, scale, self.batch)
    }
}
