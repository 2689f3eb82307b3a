//! Zero-shot retrieval: CLIP_benchmark 1.4.0 `zeroshot_retrieval.evaluate` (`recall_at_k`,
//! `batchify`) and DataComp's `mean_recall@1`, computed in bounded memory.
//!
//! CLIP_benchmark builds the full `scores = texts · imagesᵀ` matrix and a boolean
//! positive-pair matrix of the same size, then takes `topk` per row. We compute the scores a
//! block of rows at a time ([`crate::matrix::for_each_score_row`]) and keep, per row, only the
//! rank of its best positive, so memory is `O(N + M)` plus one block per worker.
//!
//! * `image_retrieval_recall@k` (text → image): the fraction of captions whose image is among
//!   the `k` images most similar to the caption.
//! * `text_retrieval_recall@k` (image → text): the fraction of images with **any** of their
//!   captions among the `k` captions most similar to the image. An image without captions
//!   counts as a miss (CLIP_benchmark: `0/0 = nan`, and `nan > 0` is false).
//! * `mean_recall@1 = (image_retrieval_recall@1 + text_retrieval_recall@1) / 2` (DataComp).
//!
//! When `k` is at least the number of candidates every row is a hit (torch would raise).

use super::classification::rank_of;
use super::MetricsError;
use crate::matrix::{for_each_score_row, Matrix, DEFAULT_BLOCK_ELEMS};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The recall cut-offs DataComp reports.
pub const DATACOMP_RECALL_KS: [usize; 3] = [1, 5, 10];

/// Per-row ranks of the positives, enough to compute recall@k for any k.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrievalRanks {
    /// For each caption, the rank of its image among all images (0 = retrieved first).
    pub text_to_image: Vec<usize>,
    /// For each image, the best rank of any of its captions among all captions
    /// (`None` when the image has no caption).
    pub image_to_text: Vec<Option<usize>>,
}

impl RetrievalRanks {
    /// Computes both directions for L2-normalised `images` (`N × D`) and `texts` (`M × D`);
    /// `text_image_index[t]` is the image of caption `t`. Scores are computed in blocks of at
    /// most `block_elems` floats per worker.
    pub fn compute(
        images: &Matrix,
        texts: &Matrix,
        text_image_index: &[usize],
        block_elems: usize,
    ) -> Result<Self, MetricsError> {
        let n_img = images.rows();
        if texts.rows() != text_image_index.len() {
            return Err(MetricsError::Shape(format!(
                "{} text embeddings but {} caption image indices",
                texts.rows(),
                text_image_index.len()
            )));
        }
        if let Some((t, &i)) = text_image_index
            .iter()
            .enumerate()
            .find(|(_, &i)| i >= n_img)
        {
            return Err(MetricsError::IdOutOfRange {
                what: "caption",
                index: t,
                id: i,
                limit: n_img,
            });
        }
        images.check_finite("image embeddings")?;
        texts.check_finite("text embeddings")?;

        // Captions of each image (CSR), in caption order.
        let mut offsets = vec![0usize; n_img + 1];
        for &i in text_image_index {
            offsets[i + 1] += 1;
        }
        for i in 0..n_img {
            offsets[i + 1] += offsets[i];
        }
        let mut fill = offsets.clone();
        let mut captions = vec![0usize; text_image_index.len()];
        for (t, &i) in text_image_index.iter().enumerate() {
            captions[fill[i]] = t;
            fill[i] += 1;
        }

        let text_to_image = for_each_score_row(texts, images, block_elems, |t, row| {
            rank_of(row, text_image_index[t])
        })?;
        let image_to_text = for_each_score_row(images, texts, block_elems, |i, row| {
            best_positive_rank(row, &captions[offsets[i]..offsets[i + 1]])
        })?;
        Ok(Self {
            text_to_image,
            image_to_text,
        })
    }

    /// Recall@k in both directions: (`image_retrieval_recall@k`, `text_retrieval_recall@k`).
    pub fn recall_at(&self, k: usize) -> (f64, f64) {
        let img = mean_bool(
            self.text_to_image.iter().map(|&r| r < k),
            self.text_to_image.len(),
        );
        let txt = mean_bool(
            self.image_to_text.iter().map(|r| r.is_some_and(|r| r < k)),
            self.image_to_text.len(),
        );
        (img, txt)
    }

    /// Recall for each of `ks`.
    pub fn metrics(&self, ks: &[usize]) -> RetrievalMetrics {
        let (image, text): (Vec<f64>, Vec<f64>) = ks.iter().map(|&k| self.recall_at(k)).unzip();
        RetrievalMetrics {
            ks: ks.to_vec(),
            image_retrieval_recall: image,
            text_retrieval_recall: text,
            num_images: self.image_to_text.len(),
            num_texts: self.text_to_image.len(),
        }
    }
}

fn mean_bool(it: impl Iterator<Item = bool>, n: usize) -> f64 {
    if n == 0 {
        return f64::NAN;
    }
    it.filter(|&b| b).count() as f64 / n as f64
}

/// The rank of the best of `positives` in `row` (score descending, index ascending):
/// any positive is in the top k iff this rank is below k.
fn best_positive_rank(row: &[f32], positives: &[usize]) -> Option<usize> {
    let best = positives.iter().copied().reduce(|a, b| {
        // Higher score wins; equal scores: lower index wins.
        if row[b] > row[a] || (row[b] == row[a] && b < a) {
            b
        } else {
            a
        }
    })?;
    Some(rank_of(row, best))
}

/// DataComp retrieval metrics for one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrievalMetrics {
    /// The cut-offs, in order.
    pub ks: Vec<usize>,
    /// `image_retrieval_recall@k` (text → image) per cut-off.
    pub image_retrieval_recall: Vec<f64>,
    /// `text_retrieval_recall@k` (image → text) per cut-off.
    pub text_retrieval_recall: Vec<f64>,
    /// Number of images.
    pub num_images: usize,
    /// Number of captions.
    pub num_texts: usize,
}

impl RetrievalMetrics {
    /// DataComp's `mean_recall@1` (needs k = 1 among the cut-offs).
    pub fn mean_recall_at_1(&self) -> Option<f64> {
        let i = self.ks.iter().position(|&k| k == 1)?;
        Some(0.5 * (self.text_retrieval_recall[i] + self.image_retrieval_recall[i]))
    }

    /// The `metrics` object of a DataComp record (without `main_metric`): every
    /// `image_retrieval_recall@k`, `text_retrieval_recall@k`, then `mean_recall@1`.
    pub fn to_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        for (i, k) in self.ks.iter().enumerate() {
            m.insert(
                format!("image_retrieval_recall@{k}"),
                Value::from(self.image_retrieval_recall[i]),
            );
            m.insert(
                format!("text_retrieval_recall@{k}"),
                Value::from(self.text_retrieval_recall[i]),
            );
        }
        if let Some(v) = self.mean_recall_at_1() {
            m.insert("mean_recall@1".into(), Value::from(v));
        }
        m
    }
}

/// The whole CLIP_benchmark/DataComp retrieval evaluation from raw embeddings: L2-normalises
/// copies of `image_features` and `text_features`, ranks in bounded memory and reports
/// recall@{1,5,10} plus `mean_recall@1`.
pub fn evaluate(
    image_features: &Matrix,
    text_features: &Matrix,
    text_image_index: &[usize],
) -> Result<RetrievalMetrics, MetricsError> {
    if image_features.rows() == 0 || text_features.rows() == 0 {
        return Err(MetricsError::Empty(format!(
            "retrieval needs images and captions, got {} images and {} captions",
            image_features.rows(),
            text_features.rows()
        )));
    }
    let mut images = image_features.clone();
    images.l2_normalize_rows();
    let mut texts = text_features.clone();
    texts.l2_normalize_rows();
    let ranks = RetrievalRanks::compute(&images, &texts, text_image_index, DEFAULT_BLOCK_ELEMS)?;
    Ok(ranks.metrics(&DATACOMP_RECALL_KS))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 3 images, 4 captions; hand-computed ranks.
    #[test]
    fn hand_computed_ranks_and_recalls() {
        let images = Matrix::new(3, 2, vec![1., 0., 0., 1., -1., 0.]).unwrap();
        // caption 0 -> img 0, caption 1 -> img 0, caption 2 -> img 1, caption 3 -> img 2
        let texts = Matrix::new(4, 2, vec![0., 1., 1., 0., 0., 1., 1., 0.]).unwrap();
        let idx = [0, 0, 1, 2];
        let r = RetrievalRanks::compute(&images, &texts, &idx, 1).unwrap();
        // caption 0 scores vs images: [0, 1, 0] -> img0 rank: (1 > 0) = 1
        // caption 1 scores: [1, 0, -1] -> img0 rank 0
        // caption 2 scores: [0, 1, 0] -> img1 rank 0
        // caption 3 scores: [1, 0, -1] -> img2 rank 2
        assert_eq!(r.text_to_image, vec![1, 0, 0, 2]);
        // image 0 scores vs captions: [0, 1, 0, 1] -> best positive caption 1, rank 0
        // image 1 scores: [1, 0, 1, 0] -> caption 2: caption 0 ties before it -> rank 1
        // image 2 scores: [0, -1, 0, -1] -> caption 3: captions 0, 2 above, 1 ties first -> rank 3
        assert_eq!(r.image_to_text, vec![Some(0), Some(1), Some(3)]);
        let m = r.metrics(&[1, 2, 5]);
        assert_eq!(m.image_retrieval_recall, vec![0.5, 0.75, 1.0]);
        assert_eq!(m.text_retrieval_recall, vec![1.0 / 3.0, 2.0 / 3.0, 1.0]);
        assert_eq!(m.mean_recall_at_1(), Some(0.5 * (0.5 + 1.0 / 3.0)));
        let j = m.to_json();
        assert_eq!(j.keys().next_back().unwrap(), "mean_recall@1");
        assert_eq!(j["image_retrieval_recall@2"], 0.75);
    }

    #[test]
    fn image_without_caption_is_a_miss() {
        let images = Matrix::new(2, 1, vec![1., 1.]).unwrap();
        let texts = Matrix::new(1, 1, vec![1.]).unwrap();
        let r = RetrievalRanks::compute(&images, &texts, &[1], 1024).unwrap();
        // Tie between both images: image 0 wins, caption's image 1 has rank 1.
        assert_eq!(r.text_to_image, vec![1]);
        assert_eq!(r.image_to_text, vec![None, Some(0)]);
        assert_eq!(r.recall_at(1), (0.0, 0.5));
        assert_eq!(r.recall_at(10), (1.0, 0.5));
    }

    #[test]
    fn bad_caption_index_names_the_caption() {
        let images = Matrix::new(2, 1, vec![1., 1.]).unwrap();
        let texts = Matrix::new(2, 1, vec![1., 1.]).unwrap();
        let err = RetrievalRanks::compute(&images, &texts, &[0, 2], 16)
            .unwrap_err()
            .to_string();
        assert!(err.contains("caption 1") && err.contains("id 2"), "{err}");
        assert!(evaluate(&Matrix::zeros(0, 1), &texts, &[0, 0]).is_err());
    }
}
