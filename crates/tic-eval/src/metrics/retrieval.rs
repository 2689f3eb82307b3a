//! Zero-shot retrieval: CLIP_benchmark 1.4.0 `zeroshot_retrieval.evaluate` (`recall_at_k`,
//! `batchify`) and DataComp's `mean_recall@1`, computed in bounded memory.
//!
//! CLIP_benchmark builds the full `scores = texts · imagesᵀ` matrix and a boolean
//! positive-pair matrix of the same size, then takes `topk` per row. We compute the scores one
//! tile (a block of rows × a block of columns, [`crate::matrix::matmul_nt_slices`]) at a time,
//! and only once for both directions: first the score of every positive pair (from the tiles
//! that hold one), then, in one pass over all tiles, per caption the number of images that rank
//! before its image and per image the number of captions that rank before its best caption.
//! Memory is `O(N + M)` plus one tile per worker.
//!
//! * `image_retrieval_recall@k` (text → image): the fraction of captions whose image is among
//!   the `k` images most similar to the caption.
//! * `text_retrieval_recall@k` (image → text): the fraction of images with **any** of their
//!   captions among the `k` captions most similar to the image. An image without captions
//!   counts as a miss (CLIP_benchmark: `0/0 = nan`, and `nan > 0` is false).
//! * `mean_recall@1 = (image_retrieval_recall@1 + text_retrieval_recall@1) / 2` (DataComp).
//!
//! When `k` is at least the number of candidates every row is a hit (torch would raise).

use crate::error::MetricsError;
use crate::matrix::{matmul_nt_slices, Matrix, DEFAULT_BLOCK_ELEMS};
use rayon::prelude::*;
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
        check_inputs(images, texts, text_image_index)?;
        let n_img = images.rows();
        let tiles = Tiling::new(texts.rows(), n_img, block_elems);
        // Pass 1: the score of every positive pair, taken from the very tiles of pass 2 (same
        // gemm call, same bits), so that a positive compares equal to itself there.
        let pos_score = positive_scores(images, texts, text_image_index, &tiles);
        // Each image's best caption: highest score, ties to the lowest caption index.
        let mut best: Vec<Option<(f32, usize)>> = vec![None; n_img];
        for (t, &i) in text_image_index.iter().enumerate() {
            let s = pos_score[t];
            if best[i].is_none_or(|(b, _)| s > b) {
                best[i] = Some((s, t));
            }
        }
        if texts.rows() > u32::MAX as usize {
            return Err(MetricsError::Shape("more than 2^32 captions".into()));
        }
        let positives = Positives {
            text_image_index,
            score: &pos_score,
            // Images without captions never count a caption (threshold +inf, never exceeded).
            col_thr: best
                .iter()
                .map(|b| b.map_or(f32::INFINITY, |(s, _)| s))
                .collect(),
            col_pos: best
                .iter()
                .map(|b| b.map_or(0, |(_, t)| t as u32))
                .collect(),
        };
        let (text_to_image, image_to_text_counts) = count_ranks(images, texts, &tiles, &positives);
        let image_to_text = best
            .iter()
            .zip(image_to_text_counts)
            .map(|(b, c)| b.map(|_| c as usize))
            .collect();
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

/// Refuses captions and caption indices that do not fit together, a caption pointing at a
/// missing image and non-finite embeddings.
fn check_inputs(
    images: &Matrix,
    texts: &Matrix,
    text_image_index: &[usize],
) -> Result<(), MetricsError> {
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
    Ok(())
}

/// The positive pairs as pass 2 counts them: per caption its image and score, per image the
/// score (`col_thr`) and index (`col_pos`) of its best caption.
struct Positives<'a> {
    text_image_index: &'a [usize],
    score: &'a [f32],
    col_thr: Vec<f32>,
    col_pos: Vec<u32>,
}

/// Pass 2: one pass over scores = texts · imagesᵀ (CLIP_benchmark's `scores`), tile by
/// tile. Rank of a positive with score v at index p among a row's candidates:
/// #{j : s_j > v} + #{j < p : s_j = v}. Rows (captions) are counted per row; columns
/// (images, i.e. rows of scoresᵀ) are counted per worker and summed. Returns per caption the
/// rank of its image, per image the number of captions ranked before its best one.
fn count_ranks(
    images: &Matrix,
    texts: &Matrix,
    tiles: &Tiling,
    pos: &Positives,
) -> (Vec<usize>, Vec<u32>) {
    let n_img = images.rows();
    let (rows, image_to_text_counts) = (0..tiles.row_tiles())
        .into_par_iter()
        .fold(
            || (Vec::new(), vec![0u32; n_img], Vec::<f32>::new()),
            |(mut rows_out, mut col_cnt, mut buf), rt| {
                let (t0, t1) = tiles.rows(rt);
                let mut row_cnt = vec![0usize; t1 - t0];
                for ct in 0..tiles.col_tiles() {
                    let (j0, j1) = tiles.cols(ct);
                    let w = tiles.score_tile(texts, images, (rt, ct), &mut buf);
                    let thr = &pos.col_thr[j0..j1];
                    let cpos = &pos.col_pos[j0..j1];
                    let cnt = &mut col_cnt[j0..j1];
                    for (r, row) in buf.chunks_exact(w).enumerate() {
                        let t = t0 + r;
                        let v = pos.score[t];
                        let p = pos.text_image_index[t];
                        row_cnt[r] += count_row(row, v, p.saturating_sub(j0).min(w));
                        count_cols(row, t as u32, thr, cpos, cnt);
                    }
                }
                rows_out.push((t0, row_cnt));
                (rows_out, col_cnt, buf)
            },
        )
        .map(|(rows, cols, _)| (rows, cols))
        .reduce(
            || (Vec::new(), vec![0u32; n_img]),
            |(mut ra, mut ca), (rb, cb)| {
                ra.extend(rb);
                ca.iter_mut().zip(cb).for_each(|(a, b)| *a += b);
                (ra, ca)
            },
        );
    let mut rows = rows;
    rows.sort_by_key(|(t0, _)| *t0);
    let text_to_image = rows.into_iter().flat_map(|(_, r)| r).collect();
    (text_to_image, image_to_text_counts)
}

/// Row and column tiles of the `M × N` score matrix: at most `block_elems` scores per tile.
#[derive(Debug, Clone, Copy)]
struct Tiling {
    m: usize,
    n: usize,
    tr: usize,
    tc: usize,
}

/// Columns per tile: wide enough for efficient GEMM and vectorised counting, small enough that a
/// tile of images (`TILE_COLS × D` floats) stays in cache while it is used.
const TILE_COLS: usize = 4096;

impl Tiling {
    fn new(m: usize, n: usize, block_elems: usize) -> Self {
        let tc = TILE_COLS.min(n.max(1)).min(block_elems.max(1));
        let by_mem = (block_elems / tc).max(1);
        // Enough row tiles to keep every worker busy.
        let workers = rayon::current_num_threads().max(1);
        let tr = by_mem.min(m.div_ceil(4 * workers).max(1)).max(1);
        Self { m, n, tr, tc }
    }
    fn row_tiles(&self) -> usize {
        self.m.div_ceil(self.tr)
    }
    fn col_tiles(&self) -> usize {
        self.n.div_ceil(self.tc)
    }
    fn rows(&self, i: usize) -> (usize, usize) {
        (i * self.tr, ((i + 1) * self.tr).min(self.m))
    }
    fn cols(&self, j: usize) -> (usize, usize) {
        (j * self.tc, ((j + 1) * self.tc).min(self.n))
    }
    /// Tile `(rt, ct)` of `scores = texts · imagesᵀ` (rows [`Self::rows`], columns
    /// [`Self::cols`]), row-major into `buf` (resized to fit); returns the tile's width.
    fn score_tile(
        &self,
        texts: &Matrix,
        images: &Matrix,
        (rt, ct): (usize, usize),
        buf: &mut Vec<f32>,
    ) -> usize {
        let d = images.cols();
        let (t0, t1) = self.rows(rt);
        let (j0, j1) = self.cols(ct);
        let w = j1 - j0;
        buf.clear();
        buf.resize((t1 - t0) * w, 0.0);
        matmul_nt_slices(
            &texts.data()[t0 * d..t1 * d],
            t1 - t0,
            &images.data()[j0 * d..j1 * d],
            w,
            d,
            buf,
        );
        w
    }
}

/// The score of each caption with its own image, computed by the same tile GEMMs as the main
/// pass (only the tiles that hold a positive pair).
fn positive_scores(
    images: &Matrix,
    texts: &Matrix,
    text_image_index: &[usize],
    tiles: &Tiling,
) -> Vec<f32> {
    let mut by_tile: std::collections::BTreeMap<(usize, usize), Vec<usize>> = Default::default();
    for (t, &i) in text_image_index.iter().enumerate() {
        by_tile
            .entry((t / tiles.tr, i / tiles.tc))
            .or_default()
            .push(t);
    }
    let jobs: Vec<((usize, usize), Vec<usize>)> = by_tile.into_iter().collect();
    let found: Vec<Vec<(usize, f32)>> = jobs
        .par_iter()
        .map_init(Vec::<f32>::new, |buf, (tile, ts)| {
            let w = tiles.score_tile(texts, images, *tile, buf);
            let (t0, j0) = (tiles.rows(tile.0).0, tiles.cols(tile.1).0);
            ts.iter()
                .map(|&t| (t, buf[(t - t0) * w + text_image_index[t] - j0]))
                .collect()
        })
        .collect();
    let mut out = vec![0.0f32; text_image_index.len()];
    for (t, v) in found.into_iter().flatten() {
        out[t] = v;
    }
    out
}

/// Candidates of one tile row that rank before a positive of score `v` whose index is at or
/// after local position `p` (`p = row.len()` when the positive lies beyond this tile, `0` when
/// before it): `#{j < p : s_j ≥ v} + #{j ≥ p : s_j > v}`; the positive itself (`s_p = v`)
/// never counts.
fn count_row(row: &[f32], v: f32, p: usize) -> usize {
    let (before, after) = row.split_at(p);
    before.iter().map(|&s| (s >= v) as usize).sum::<usize>()
        + after.iter().map(|&s| (s > v) as usize).sum::<usize>()
}

/// For each column `j` of a tile row (caption `t`): counts the caption for image `j` when it
/// ranks before the image's best caption (`thr[j]`, index `pos[j]`).
fn count_cols(row: &[f32], t: u32, thr: &[f32], pos: &[u32], cnt: &mut [u32]) {
    for (((&s, &v), &p), c) in row.iter().zip(thr).zip(pos).zip(cnt.iter_mut()) {
        *c += ((s > v) | ((s == v) & (t < p))) as u32;
    }
}

fn mean_bool(it: impl Iterator<Item = bool>, n: usize) -> f64 {
    if n == 0 {
        return f64::NAN;
    }
    it.filter(|&b| b).count() as f64 / n as f64
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

    /// Tiles of every shape give the ranks of a full-matrix stable sort, including exact ties
    /// that straddle tile borders (small-integer embeddings: every dot product is exact).
    #[test]
    fn tiling_matches_full_matrix_ranks_with_ties() {
        let (n_img, n_txt, d) = (53, 131, 3);
        let mut s = 12345u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let images = Matrix::new(
            n_img,
            d,
            (0..n_img * d).map(|_| (next() % 4) as f32 - 1.0).collect(),
        )
        .unwrap();
        let texts = Matrix::new(
            n_txt,
            d,
            (0..n_txt * d).map(|_| (next() % 4) as f32 - 1.0).collect(),
        )
        .unwrap();
        // Images 0..50 get captions in random order; 50..53 none.
        let index: Vec<usize> = (0..n_txt).map(|_| (next() % 50) as usize).collect();
        // Reference: full score rows, stable-sort ranks.
        let score = |t: usize, i: usize| -> f32 {
            texts
                .row(t)
                .iter()
                .zip(images.row(i))
                .map(|(a, b)| a * b)
                .sum()
        };
        let want_t2i: Vec<usize> = (0..n_txt)
            .map(|t| {
                let row: Vec<f32> = (0..n_img).map(|i| score(t, i)).collect();
                crate::metrics::classification::rank_of(&row, index[t])
            })
            .collect();
        let want_i2t: Vec<Option<usize>> = (0..n_img)
            .map(|i| {
                let row: Vec<f32> = (0..n_txt).map(|t| score(t, i)).collect();
                (0..n_txt)
                    .filter(|&t| index[t] == i)
                    .map(|t| crate::metrics::classification::rank_of(&row, t))
                    .min()
            })
            .collect();
        for elems in [1, 2, 7, 64, 1000, 4096 * 3, DEFAULT_BLOCK_ELEMS] {
            let r = RetrievalRanks::compute(&images, &texts, &index, elems).unwrap();
            assert_eq!(r.text_to_image, want_t2i, "block_elems {elems}");
            assert_eq!(r.image_to_text, want_i2t, "block_elems {elems}");
        }
    }
}
