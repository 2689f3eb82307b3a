//! Image↔text retrieval on a set of samples with a model (eval transform), used to check that
//! training learned something (`tests/`); its embedding of samples is also `--val_data`'s
//! ([`crate::val`]).

use anyhow::Result;
use candle_core::{Device, Tensor};
use tic_model::Clip;

use crate::loader::{load_eval_sample, ShardStore};
use crate::plan::SampleId;

/// Recall@1 in both directions over `ids` (each image's own caption is its only positive).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retrieval {
    /// Image→text recall@1.
    pub image_to_text_r1: f64,
    /// Text→image recall@1.
    pub text_to_image_r1: f64,
    /// Number of pairs (chance = 1/n).
    pub n: usize,
}

/// Embeds the samples (batches of 256) and computes recall@1.
pub fn retrieval(
    model: &Clip,
    store: &ShardStore,
    ids: &[SampleId],
    device: &Device,
) -> Result<Retrieval> {
    let (i, t) = embed_pairs(model, store, ids, device, 256)?;
    let sim = i.matmul(&t.t()?)?;
    let n = ids.len();
    let i2t: Vec<u32> = sim.argmax(1)?.to_vec1()?;
    let t2i: Vec<u32> = sim.t()?.contiguous()?.argmax(1)?.to_vec1()?;
    let hit = |v: &[u32]| {
        v.iter()
            .enumerate()
            .filter(|(k, &j)| *k == j as usize)
            .count() as f64
            / n as f64
    };
    Ok(Retrieval {
        image_to_text_r1: hit(&i2t),
        text_to_image_r1: hit(&t2i),
        n,
    })
}

/// The normalised image and text features (`[n, D]` each, in `ids` order) of the samples,
/// with the eval transform, `batch` samples per forward pass (also what `--val_data` embeds).
pub fn embed_pairs(
    model: &Clip,
    store: &ShardStore,
    ids: &[SampleId],
    device: &Device,
    batch: usize,
) -> Result<(Tensor, Tensor)> {
    let size = model.config().vision_cfg.image_size as u32;
    let ctx = model.config().text_cfg.context_length;
    let mut imgs = Vec::new();
    let mut txts = Vec::new();
    for chunk in ids.chunks(batch.max(1)) {
        let rows: Vec<(Vec<f32>, Vec<u32>)> = chunk
            .iter()
            .map(|&id| load_eval_sample(store, id, size, ctx))
            .collect::<Result<_>>()?;
        let n = rows.len();
        let s = size as usize;
        let pix: Vec<f32> = rows.iter().flat_map(|r| r.0.iter().copied()).collect();
        let tok: Vec<u32> = rows.iter().flat_map(|r| r.1.iter().copied()).collect();
        let im = Tensor::from_vec(pix, (n, 3, s, s), device)?;
        let tk = Tensor::from_vec(tok, (n, ctx), device)?;
        imgs.push(model.encode_image_normalized(&im)?.detach());
        txts.push(model.encode_text_normalized(&tk)?.detach());
    }
    Ok((Tensor::cat(&imgs, 0)?, Tensor::cat(&txts, 0)?))
}
