//! Seeded train/test split with scikit-learn's sizes.
//!
//! The original calls `sklearn.model_selection.train_test_split(df, test_size=0.01)` without a
//! seed, so its split is not reproducible and cannot be matched bit for bit. We keep sklearn's
//! sizes — `n_test = ceil(test_size · n)` for a fraction, `test_size` itself when it is a whole
//! number ≥ 1, `n_train = n − n_test` — and choose the test rows deterministically:
//! a `ChaCha8Rng` seeded with `seed_from_u64(seed)` on stream `group` draws `n_test` distinct
//! row indices with Robert Floyd's sampling algorithm (uniform integers by rejection sampling).
//! The same seed, group and `n` always give the same rows; rows keep their input order in the
//! output files (sklearn shuffles them; nothing downstream depends on the order).
use anyhow::{bail, Result};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;

/// The train/test split flags of `tic-yfcc-splits` and `tic-redcaps-splits` (clap
/// `#[command(flatten)]`).
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct SplitArgs {
    /// Seed of the train/test split.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Test share per group (fraction), or a row count when ≥ 1 (sklearn's test_size).
    #[arg(long, default_value_t = 0.01)]
    pub test_size: f64,
}

/// sklearn's `n_test` for `n` rows.
pub fn test_count(n: usize, test_size: f64) -> Result<usize> {
    if test_size.is_nan() || test_size <= 0.0 || !test_size.is_finite() {
        bail!("--test-size must be a positive fraction below 1 or a whole number of rows, got {test_size}");
    }
    if test_size < 1.0 {
        Ok(((test_size * n as f64).ceil() as usize).min(n))
    } else if test_size.fract() == 0.0 {
        Ok((test_size as usize).min(n))
    } else {
        bail!("--test-size {test_size} is neither a fraction below 1 nor a whole number of rows");
    }
}

/// A uniform integer in `0..=hi` from `rng` (rejection sampling, no modulo bias).
fn uniform_inclusive(rng: &mut ChaCha8Rng, hi: u64) -> u64 {
    if hi == u64::MAX {
        return rng.next_u64();
    }
    let range = hi + 1;
    // Accept v < limit, a multiple of range, so v % range is uniform.
    let limit = (u64::MAX / range) * range;
    loop {
        let v = rng.next_u64();
        if v < limit {
            return v % range;
        }
    }
}

/// The sorted row indices (`0..n`) of the test set of group `group`.
pub fn test_indices(n: usize, n_test: usize, seed: u64, group: u64) -> Vec<u64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(group);
    let n = n as u64;
    let k = (n_test as u64).min(n);
    let mut chosen: HashSet<u64> = HashSet::with_capacity(k as usize);
    for j in (n - k)..n {
        let t = uniform_inclusive(&mut rng, j);
        if !chosen.insert(t) {
            chosen.insert(j);
        }
    }
    let mut v: Vec<u64> = chosen.into_iter().collect();
    v.sort_unstable();
    v
}

/// Walks rows in order and says which belong to the test set.
#[derive(Debug, Clone)]
pub struct Splitter {
    test: Vec<u64>,
    next: usize,
    row: u64,
}

impl Splitter {
    /// A splitter for `n` rows with `n_test` test rows.
    pub fn new(n: usize, n_test: usize, seed: u64, group: u64) -> Self {
        Splitter {
            test: test_indices(n, n_test, seed, group),
            next: 0,
            row: 0,
        }
    }

    /// True when the next row (in input order) is a test row.
    pub fn next_is_test(&mut self) -> bool {
        let r = self.row;
        self.row += 1;
        if self.test.get(self.next) == Some(&r) {
            self.next += 1;
            true
        } else {
            false
        }
    }

    /// Rows seen so far.
    pub fn rows_seen(&self) -> u64 {
        self.row
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sklearn_sizes() {
        assert_eq!(test_count(1000, 0.01).unwrap(), 10);
        assert_eq!(test_count(1001, 0.01).unwrap(), 11);
        assert_eq!(test_count(50, 0.01).unwrap(), 1);
        assert_eq!(test_count(0, 0.01).unwrap(), 0);
        assert_eq!(test_count(7, 3.0).unwrap(), 3);
        assert!(test_count(7, 0.0).is_err());
        assert!(test_count(7, 2.5).is_err());
    }

    #[test]
    fn deterministic_disjoint_complete() {
        for (n, k) in [(1000usize, 10usize), (5, 5), (37, 1), (0, 0), (100, 99)] {
            let a = test_indices(n, k, 7, 2);
            assert_eq!(a, test_indices(n, k, 7, 2));
            assert_eq!(a.len(), k);
            assert!(a.windows(2).all(|w| w[0] < w[1]) && a.iter().all(|&i| (i as usize) < n));
            let mut s = Splitter::new(n, k, 7, 2);
            let t = (0..n).filter(|_| s.next_is_test()).count();
            assert_eq!(t, k);
        }
        assert_ne!(test_indices(1000, 10, 7, 2), test_indices(1000, 10, 8, 2));
        assert_ne!(test_indices(1000, 10, 7, 2), test_indices(1000, 10, 7, 3));
    }

    #[test]
    fn roughly_uniform() {
        let mut hits = [0u32; 10];
        for seed in 0..2000 {
            for i in test_indices(100, 5, seed, 0) {
                hits[(i / 10) as usize] += 1;
            }
        }
        // 10,000 draws over 10 buckets: expect 1000 each.
        assert!(hits.iter().all(|&h| (850..1150).contains(&h)), "{hits:?}");
    }
}
