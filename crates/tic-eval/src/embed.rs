//! Embedding an evaluation set with a CLIP model: images decoded and eval-transformed on worker
//! threads while the model runs, texts tokenised and encoded in batches.

use crate::evalset::{EvalSample, EvalSet, Label};
use crate::matrix::Matrix;
use anyhow::{anyhow, Context, Result};
use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;
use std::sync::mpsc::sync_channel;
use tic_model::{preprocess, Clip};

/// A model that maps images and texts to embeddings (rows need not be normalised).
pub trait Encoder: Sync {
    /// Input image side in pixels (the eval transform's output size).
    fn image_size(&self) -> u32;
    /// Encodes `n` eval-transformed CHW images (`n · 3 · size · size` values).
    fn encode_images(&self, pixels: Vec<f32>, n: usize) -> Result<Matrix>;
    /// Encodes texts.
    fn encode_texts(&self, texts: &[String]) -> Result<Matrix>;
}

/// [`Encoder`] for a `tic_model::Clip` (L2-normalised features, computed in f32 on `device`).
pub struct ClipEncoder {
    /// The model.
    pub model: Clip,
    /// Where it runs.
    pub device: Device,
}

fn to_matrix(t: &Tensor) -> Result<Matrix> {
    let t = t.to_dtype(DType::F32)?;
    let (n, d) = t.dims2()?;
    Ok(Matrix::new(n, d, t.flatten_all()?.to_vec1::<f32>()?)?)
}

impl Encoder for ClipEncoder {
    fn image_size(&self) -> u32 {
        self.model.config().vision_cfg.image_size as u32
    }

    fn encode_images(&self, pixels: Vec<f32>, n: usize) -> Result<Matrix> {
        let s = self.image_size() as usize;
        let px = Tensor::from_vec(pixels, (n, 3, s, s), &self.device)?;
        to_matrix(&self.model.encode_image_normalized(&px)?)
    }

    fn encode_texts(&self, texts: &[String]) -> Result<Matrix> {
        to_matrix(&self.model.encode_texts_normalized(texts)?)
    }
}

/// The image side of an evaluation set: one feature row per sample, and the labels.
#[derive(Debug, Clone)]
pub struct ImageEmbeddings {
    /// `N × D` image features, in sample order.
    pub features: Matrix,
    /// The label of each sample.
    pub labels: Vec<Label>,
    /// `shard: sample key` of each sample.
    pub origins: Vec<String>,
}

/// Options of the embedding pipeline.
#[derive(Debug, Clone, Copy)]
pub struct EmbedOptions {
    /// Images / texts per forward pass.
    pub batch_size: usize,
    /// Threads that read shards and decode + transform images (at least 1).
    pub num_workers: usize,
}

struct Batch {
    pixels: Vec<f32>,
    n: usize,
    labels: Vec<Label>,
    origins: Vec<String>,
}

fn prepare(samples: Vec<EvalSample>, size: u32) -> Result<Batch> {
    let rows: Vec<Vec<f32>> = samples
        .par_iter()
        .map(|s| {
            let img = preprocess::decode_rgb(&s.image)
                .with_context(|| format!("{}: cannot decode the image", s.origin))?;
            Ok(preprocess::eval_transform(&img, size))
        })
        .collect::<Result<_>>()?;
    let n = samples.len();
    let mut pixels = Vec::with_capacity(rows.iter().map(Vec::len).sum());
    rows.into_iter().for_each(|r| pixels.extend(r));
    let (labels, origins) = samples.into_iter().map(|s| (s.label, s.origin)).unzip();
    Ok(Batch {
        pixels,
        n,
        labels,
        origins,
    })
}

/// Embeds every image of `set`, in sample order. A reader thread (with `num_workers` decode
/// threads) prepares the next batches while the model encodes the current one. `progress` is
/// called with the number of images done after each batch.
pub fn embed_images(
    enc: &dyn Encoder,
    set: &EvalSet,
    opts: EmbedOptions,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<ImageEmbeddings> {
    let bs = opts.batch_size.max(1);
    let size = enc.image_size();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.num_workers.max(1))
        .thread_name(|i| format!("tic-eval-decode-{i}"))
        .build()
        .context("starting decode threads")?;
    let (tx, rx) = sync_channel::<Result<Batch>>(2);
    let mut data: Vec<f32> = Vec::new();
    let mut dim = 0;
    let mut labels = Vec::new();
    let mut origins = Vec::new();
    std::thread::scope(|scope| -> Result<()> {
        scope.spawn(move || {
            let mut pending: Vec<EvalSample> = Vec::with_capacity(bs);
            let send = |batch: Vec<EvalSample>| -> bool {
                let b = pool.install(|| prepare(batch, size));
                let failed = b.is_err();
                tx.send(b).is_ok() && !failed
            };
            for i in 0..set.shards.len() {
                let samples = match set.read_shard(i) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                for s in samples {
                    pending.push(s);
                    if pending.len() == bs && !send(std::mem::take(&mut pending)) {
                        return;
                    }
                }
            }
            if !pending.is_empty() {
                send(pending);
            }
        });
        for batch in rx {
            let b = batch?;
            let f = enc
                .encode_images(b.pixels, b.n)
                .with_context(|| format!("encoding the batch starting at {}", b.origins[0]))?;
            if f.rows() != b.n {
                return Err(anyhow!(
                    "encoder returned {} rows for {} images",
                    f.rows(),
                    b.n
                ));
            }
            dim = f.cols();
            data.extend_from_slice(f.data());
            labels.extend(b.labels);
            origins.extend(b.origins);
            progress(labels.len());
        }
        Ok(())
    })?;
    Ok(ImageEmbeddings {
        features: Matrix::new(labels.len(), dim, data)?,
        labels,
        origins,
    })
}

/// Embeds `texts` in batches of `batch_size`, in order. `progress` gets the number done.
pub fn embed_texts(
    enc: &dyn Encoder,
    texts: &[String],
    batch_size: usize,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Matrix> {
    let mut data = Vec::new();
    let mut dim = 0;
    let mut done = 0;
    for chunk in texts.chunks(batch_size.max(1)) {
        let f = enc
            .encode_texts(chunk)
            .with_context(|| format!("encoding texts starting with {:?}", chunk[0]))?;
        dim = f.cols();
        data.extend_from_slice(f.data());
        done += chunk.len();
        progress(done);
    }
    Ok(Matrix::new(texts.len(), dim, data)?)
}
