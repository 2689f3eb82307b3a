//! Large retrieval in bounded memory (ignored by default: run with
//! `TIC_EVAL_RETRIEVAL_N=100000 cargo test --release -p tic-eval --test retrieval_scale -- --ignored --nocapture`).

use std::time::Instant;
use tic_eval::matrix::{Matrix, DEFAULT_BLOCK_ELEMS};
use tic_eval::metrics::retrieval::RetrievalRanks;

/// Deterministic pseudo-random unit vectors (xorshift), no extra dependency.
fn random_unit(rows: usize, dim: usize, seed: u64) -> Matrix {
    let mut s = seed;
    let mut data = Vec::with_capacity(rows * dim);
    for _ in 0..rows * dim {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        data.push((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5);
    }
    let mut m = Matrix::new(rows, dim, data).unwrap();
    m.l2_normalize_rows();
    m
}

#[test]
#[ignore = "large: set TIC_EVAL_RETRIEVAL_N (default 20000) and run in release"]
fn retrieval_n_by_n_in_bounded_memory() {
    let n: usize = std::env::var("TIC_EVAL_RETRIEVAL_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let dim = 512;
    let images = random_unit(n, dim, 1);
    // Captions = image + noise, so recall is far from chance.
    let mut texts = random_unit(n, dim, 2);
    for i in 0..n {
        let (img, txt) = (images.row(i).to_vec(), texts.row_mut(i));
        txt.iter_mut()
            .zip(img)
            .for_each(|(t, v)| *t = 0.15 * *t + v);
    }
    texts.l2_normalize_rows();
    let index: Vec<usize> = (0..n).collect();
    let t0 = Instant::now();
    let ranks = RetrievalRanks::compute(&images, &texts, &index, DEFAULT_BLOCK_ELEMS).unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let (i1, t1) = ranks.recall_at(1);
    // The scores are computed once for both directions: 2·N²·D flops.
    println!(
        "{n} x {n} x {dim}: {secs:.1} s ({:.1} GFLOP/s: one N x N x D product for both directions), \
         R@1 i2t {t1:.4} t2i {i1:.4}",
        2.0 * (n * n * dim) as f64 / secs / 1e9
    );
    assert!(i1 > 0.5 && t1 > 0.5);
}
