//! Embedding an evaluation set: its shards' images and labels fed, in sample order, through
//! the embedding pipeline of `tic_model::embed` (the one `tic-embed` uses: decode threads +
//! batched forward), the features returned as [`Matrix`]es.

use crate::evalset::{EvalSet, Label};
use crate::matrix::Matrix;
use anyhow::Result;
use tic_model::embed::{self, EmbedOptions, Encoder, Features, ImageItem};

/// The image side of an evaluation set: one feature row per sample, and the labels.
#[derive(Debug, Clone)]
pub struct ImageEmbeddings {
    /// `N × D` image features, in sample order.
    pub features: Matrix,
    /// The label of each sample.
    pub labels: Vec<Label>,
    /// The `npy` metadata vector of each sample, where it has one (DataComp's WILDS and
    /// fairness sets).
    pub metadata: Vec<Option<Vec<i64>>>,
    /// `shard: sample key` of each sample.
    pub origins: Vec<String>,
}

fn to_matrix(f: Features) -> Result<Matrix> {
    Ok(Matrix::new(f.rows, f.dim, f.data)?)
}

/// Hands every sample of `set` to `sink`, shard by shard in order, until it refuses one.
/// What travels with each image through the pipeline: its label and metadata vector.
type SampleMeta = (Label, Option<Vec<i64>>);

fn read_set(set: &EvalSet, sink: &mut dyn FnMut(ImageItem<SampleMeta>) -> bool) -> Result<()> {
    for i in 0..set.shards.len() {
        for s in set.read_shard(i)? {
            let item = ImageItem {
                origin: s.origin,
                bytes: s.image,
                meta: (s.label, s.metadata),
            };
            if !sink(item) {
                return Ok(());
            }
        }
    }
    Ok(())
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
    let read = |sink: &mut dyn FnMut(ImageItem<SampleMeta>) -> bool| read_set(set, sink);
    let (features, metas, origins) = embed_image_items(enc, opts, read, progress)?;
    let (labels, metadata) = metas.into_iter().unzip();
    Ok(ImageEmbeddings {
        features,
        labels,
        metadata,
        origins,
    })
}

/// Embeds the images that `read` hands to its sink (until the sink refuses one), in order, as
/// [`embed_images`] does for a WebDataset set: the features, each image's `meta` and origin.
pub fn embed_image_items<M: Send>(
    enc: &dyn Encoder,
    opts: EmbedOptions,
    read: impl FnOnce(&mut dyn FnMut(ImageItem<M>) -> bool) -> Result<()> + Send,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<(Matrix, Vec<M>, Vec<String>)> {
    let out = embed::embed_images(enc, opts, read, progress).map_err(|e| e.into_anyhow())?;
    Ok((to_matrix(out.features)?, out.metas, out.origins))
}

/// Embeds `texts` in batches of `batch_size`, in order. `progress` gets the number done.
pub fn embed_texts(
    enc: &dyn Encoder,
    texts: &[String],
    batch_size: usize,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Matrix> {
    let f = embed::embed_texts(enc, texts, batch_size, progress).map_err(|e| e.into_anyhow())?;
    to_matrix(f)
}
