//! Embedding DataComp's Hugging Face sets ([`crate::hf_cache`]) for [`crate::evaluate`]:
//! Flickr / MSCOCO rows become the same image embeddings and caption labels a WebDataset
//! retrieval set gives (so they are scored by the same code, `metrics::retrieval`), and
//! WinoGAViL is embedded and scored as DataComp's `wino_eval.py` does (`metrics::winogavil`).
//!
//! Images are streamed from the Arrow files into the embedding pipeline (decode threads +
//! batched forward), so a set is never held in memory as a whole.

use crate::embed::{embed_image_items, embed_texts, ImageEmbeddings};
use crate::evalset::Label;
use crate::hf_cache::{for_each_retrieval_row, for_each_winogavil_row, CachedSet};
use crate::metrics::winogavil::{clip_prompt, score_instance, InstanceScore, WinogavilMetrics};
use anyhow::{bail, Result};
use std::time::Instant;
use tic_model::embed::{EmbedOptions, Encoder, ImageItem};

/// Embeds the images of a Flickr / MSCOCO cache in row order, each labelled with its captions.
pub fn embed_retrieval_images(
    enc: &dyn Encoder,
    set: &CachedSet,
    opts: EmbedOptions,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<ImageEmbeddings> {
    let read = |sink: &mut dyn FnMut(ImageItem<Label>) -> bool| {
        for_each_retrieval_row(set, &mut |row| {
            sink(ImageItem {
                origin: row.origin,
                bytes: row.image,
                meta: Label::Captions(row.captions),
            })
        })
        .map(|_| ())
    };
    let (features, labels, origins) = embed_image_items(enc, opts, read, progress)?;
    Ok(ImageEmbeddings {
        features,
        metadata: vec![None; labels.len()],
        labels,
        origins,
    })
}

/// A WinoGAViL instance without its images: what scoring it needs.
struct Instance {
    prompt: String,
    truth: Vec<bool>,
}

/// WinoGAViL evaluated: the record fields and what it took.
#[derive(Debug, Clone)]
pub struct WinogavilRun {
    /// `avg_jaccard_score`, `jaccard_score_{5,6,10,12,5-6,10-12}`.
    pub metrics: WinogavilMetrics,
    /// The instances' scores, in row order.
    pub scores: Vec<InstanceScore>,
    /// Candidate images embedded.
    pub images: usize,
    /// Prompts embedded (one per instance).
    pub prompts: usize,
    /// Seconds reading, decoding and embedding the images.
    pub image_secs: f64,
    /// Seconds embedding the prompts and scoring.
    pub text_secs: f64,
}

/// DataComp's `evaluate_winogavil_dataset`: every instance's candidate images and its prompt
/// ("A"/"An" + the lower-cased cue) embedded (unit vectors), the text·image similarities
/// scored by `metrics::winogavil`.
pub fn evaluate_winogavil(
    enc: &dyn Encoder,
    set: &CachedSet,
    opts: EmbedOptions,
    progress: &(dyn Fn(&str, usize) + Sync),
) -> Result<WinogavilRun> {
    let t0 = Instant::now();
    let mut instances: Vec<Instance> = Vec::new();
    let mut bad: Option<String> = None;
    let read = |sink: &mut dyn FnMut(ImageItem<usize>) -> bool| {
        for_each_winogavil_row(set, &mut |row| {
            let Some(prompt) = clip_prompt(&row.cue) else {
                bad = Some(format!("{}: empty cue", row.origin));
                return false;
            };
            let i = instances.len();
            instances.push(Instance {
                prompt,
                truth: row.truth(),
            });
            row.images.into_iter().enumerate().all(|(j, bytes)| {
                sink(ImageItem {
                    origin: format!("{} candidate {j}", row.origin),
                    bytes,
                    meta: i,
                })
            })
        })
        .map(|_| ())
    };
    let (features, owner, _) = embed_image_items(enc, opts, read, &|n| progress("images", n))?;
    if let Some(e) = bad {
        bail!("{e}");
    }
    let image_secs = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let prompts: Vec<String> = instances.iter().map(|x| x.prompt.clone()).collect();
    let text = embed_texts(enc, &prompts, opts.batch_size, &|n| progress("prompts", n))?;
    // Each instance's images are consecutive rows of `features`.
    let mut scores = Vec::with_capacity(instances.len());
    let mut start = 0;
    for (i, inst) in instances.iter().enumerate() {
        let end = start + owner[start..].iter().take_while(|&&o| o == i).count();
        let t = text.row(i);
        let sims: Vec<f32> = (start..end)
            .map(|r| t.iter().zip(features.row(r)).map(|(a, b)| a * b).sum())
            .collect();
        if sims.len() != inst.truth.len() {
            bail!(
                "instance {i}: {} images embedded for {} candidates",
                sims.len(),
                inst.truth.len()
            );
        }
        scores.push(score_instance(&sims, &inst.truth));
        start = end;
    }
    Ok(WinogavilRun {
        metrics: WinogavilMetrics::from_scores(&scores),
        scores,
        images: owner.len(),
        prompts: prompts.len(),
        image_secs,
        text_secs: t1.elapsed().as_secs_f64(),
    })
}
