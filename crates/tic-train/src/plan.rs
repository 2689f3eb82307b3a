//! The sample order: a deterministic, resumable stream of (shard, sample) ids.
//!
//! The stream is cut into *blocks*. A block is a set of shards whose samples are shuffled
//! together (this plays the role of webdataset's shuffle buffer: a block of `K` shards mixes
//! samples of `K` shards, like a buffer of `K × shard size` samples). Block `k` is a pure
//! function of `(seed, k)`, so a position in the stream is just `(block, offset)` and a resumed
//! run sees exactly the batches an uninterrupted one would.
//!
//! - [`Sampling::Resampled`] (OpenCLIP `--dataset-resampled`, `ResampledShards2`): every shard
//!   of a block is drawn with replacement, with probability proportional to its weight
//!   (uniform without weights). Samples may repeat or be skipped.
//! - [`Sampling::WithoutReplacement`]: pass `p` is a seeded permutation of all shards, cut into
//!   blocks of `K`; every sample is seen exactly once per pass. Weights are ignored (the CLI
//!   refuses `--data_weights` here, as OpenCLIP's upsampling factors need resampling).
//!
//! A shard may carry a subset of its sample indices (replay buffers of the continual
//! strategies); only those samples are drawn.
//!
//! Shards streamed from `pipe:` URLs have no sample count up front: a plan made with
//! [`Plan::counted_when_drawn`] (resampled only, as OpenCLIP requires for such URLs) asks a
//! [`Counter`] for a shard's count the first time a block draws it. The stream is the same as
//! with the counts given up front.

use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// One shard as the plan sees it.
#[derive(Debug, Clone)]
pub struct PlanShard {
    /// Number of samples in the shard file.
    pub samples: u32,
    /// Sampling weight (resampled mode).
    pub weight: f64,
    /// The samples that may be drawn (indices in tar order); `None` = all.
    pub subset: Option<Arc<Vec<u32>>>,
    /// Which input / time split it belongs to (for accounting).
    pub input: usize,
}

impl PlanShard {
    /// Number of drawable samples.
    pub fn len(&self) -> usize {
        self.subset
            .as_ref()
            .map_or(self.samples as usize, |s| s.len())
    }

    /// True when no sample can be drawn.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn sample(&self, j: usize) -> u32 {
        self.subset.as_ref().map_or(j as u32, |s| s[j])
    }
}

/// How shards are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sampling {
    /// With replacement (OpenCLIP resampled shards, weighted).
    Resampled,
    /// Each sample exactly once per pass.
    WithoutReplacement,
}

/// A sample in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SampleId {
    /// Shard index in the plan.
    pub shard: u32,
    /// Sample index in the shard (tar order).
    pub index: u32,
}

/// A position in the stream: the next sample is `offset` in block `block`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Block number.
    pub block: u64,
    /// Offset in the block.
    pub offset: u64,
    /// Samples consumed before this position (for reporting).
    pub consumed: u64,
}

/// Counts the samples of plan shard `i` (e.g. by opening it); see [`Plan::counted_when_drawn`].
pub type Counter = Arc<dyn Fn(u32) -> Result<u32> + Send + Sync>;

/// Shards whose counts are asked for when first drawn.
struct Lazy {
    counter: Counter,
    unknown: Vec<bool>,
    counts: Mutex<Vec<Option<u32>>>,
}

impl std::fmt::Debug for Lazy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.unknown.iter().filter(|&&u| u).count();
        write!(f, "Lazy({n} shards counted when drawn)")
    }
}

/// The sampling plan over a fixed list of shards.
#[derive(Debug, Clone)]
pub struct Plan {
    shards: Vec<PlanShard>,
    sampling: Sampling,
    seed: u64,
    shards_per_block: usize,
    cumulative: Vec<f64>,
    drawable: Vec<u32>,
    lazy: Option<Arc<Lazy>>,
}

/// SplitMix64 finaliser: decorrelates nearby integers.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The RNG of block `k` for one purpose (`stream`): independent of every other block.
fn block_rng(seed: u64, stream: u64, k: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(mix(mix(seed) ^ k));
    r.set_stream(stream);
    r
}

impl Plan {
    /// A plan over `shards`; `shards_per_block` shards are mixed per block (≥ 1).
    pub fn new(
        shards: Vec<PlanShard>,
        sampling: Sampling,
        seed: u64,
        shards_per_block: usize,
    ) -> Result<Self> {
        Self::build(shards, sampling, seed, shards_per_block, None)
    }

    /// A resampled plan where the shards flagged in `unknown` have no count yet (their
    /// `samples` is ignored): `counter` is asked for a shard's count the first time a block
    /// draws it, and the answer is kept. Such shards carry no subset.
    pub fn counted_when_drawn(
        shards: Vec<PlanShard>,
        unknown: Vec<bool>,
        counter: Counter,
        seed: u64,
        shards_per_block: usize,
    ) -> Result<Self> {
        if unknown.len() != shards.len() {
            bail!(
                "{} shards but {} unknown flags",
                shards.len(),
                unknown.len()
            );
        }
        if shards
            .iter()
            .zip(&unknown)
            .any(|(s, &u)| u && s.subset.is_some())
        {
            bail!("a shard without a sample count cannot carry a subset");
        }
        let n = shards.len();
        let lazy = Lazy {
            counter,
            unknown,
            counts: Mutex::new(vec![None; n]),
        };
        Self::build(
            shards,
            Sampling::Resampled,
            seed,
            shards_per_block,
            Some(Arc::new(lazy)),
        )
    }

    fn build(
        shards: Vec<PlanShard>,
        sampling: Sampling,
        seed: u64,
        shards_per_block: usize,
        lazy: Option<Arc<Lazy>>,
    ) -> Result<Self> {
        let unknown = |i: usize| lazy.as_ref().is_some_and(|l| l.unknown[i]);
        let drawable: Vec<u32> = (0..shards.len() as u32)
            .filter(|&i| unknown(i as usize) || !shards[i as usize].is_empty())
            .collect();
        if drawable.is_empty() {
            bail!("no samples to train on: every shard is empty");
        }
        let mut cumulative = Vec::with_capacity(drawable.len());
        let mut acc = 0.0;
        for &i in &drawable {
            acc += shards[i as usize].weight;
            cumulative.push(acc);
        }
        if sampling == Sampling::Resampled && acc <= 0.0 {
            bail!("all shard weights are 0");
        }
        Ok(Self {
            shards,
            sampling,
            seed,
            shards_per_block: shards_per_block.max(1),
            cumulative,
            drawable,
            lazy,
        })
    }

    /// True when every shard's count is known up front (not [`Plan::counted_when_drawn`]).
    pub fn counts_known(&self) -> bool {
        self.lazy.is_none()
    }

    /// Number of drawable samples of shard `s`, asking the counter the first time for a shard
    /// without a count.
    fn shard_len(&self, s: u32) -> Result<usize> {
        if let Some(l) = self.lazy.as_ref().filter(|l| l.unknown[s as usize]) {
            if let Some(n) = l.counts.lock().expect("count lock")[s as usize] {
                return Ok(n as usize);
            }
            let n =
                (l.counter)(s).with_context(|| format!("counting the samples of shard #{s}"))?;
            l.counts.lock().expect("count lock")[s as usize] = Some(n);
            return Ok(n as usize);
        }
        Ok(self.shards[s as usize].len())
    }

    /// The shards.
    pub fn shards(&self) -> &[PlanShard] {
        &self.shards
    }

    /// Sampling mode.
    pub fn sampling(&self) -> Sampling {
        self.sampling
    }

    /// Drawable samples in one pass over the data (without the shards whose counts are not
    /// known up front, see [`Plan::counts_known`]).
    pub fn pass_len(&self) -> u64 {
        self.drawable
            .iter()
            .map(|&i| self.shards[i as usize].len() as u64)
            .sum()
    }

    fn blocks_per_pass(&self) -> u64 {
        self.drawable.len().div_ceil(self.shards_per_block) as u64
    }

    /// The shards of block `k`, in draw order.
    pub fn block_shards(&self, k: u64) -> Vec<u32> {
        match self.sampling {
            Sampling::Resampled => {
                let mut rng = block_rng(self.seed, 1, k);
                let total = *self.cumulative.last().expect("non-empty");
                (0..self.shards_per_block)
                    .map(|_| {
                        let x = rng.random::<f64>() * total;
                        let j = self.cumulative.partition_point(|&c| c <= x);
                        self.drawable[j.min(self.drawable.len() - 1)]
                    })
                    .collect()
            }
            Sampling::WithoutReplacement => {
                let bpp = self.blocks_per_pass();
                let (pass, j) = (k / bpp, (k % bpp) as usize);
                let mut order = self.drawable.clone();
                order.shuffle(&mut block_rng(self.seed, 2, pass));
                let lo = j * self.shards_per_block;
                let hi = (lo + self.shards_per_block).min(order.len());
                order[lo..hi].to_vec()
            }
        }
    }

    /// Number of samples in block `k` (without materialising it).
    pub fn block_len(&self, k: u64) -> Result<u64> {
        let mut n = 0;
        for s in self.block_shards(k) {
            n += self.shard_len(s)? as u64;
        }
        Ok(n)
    }

    /// The samples of block `k`, shuffled. Fails only when a shard's count cannot be had
    /// ([`Plan::counted_when_drawn`]).
    pub fn block(&self, k: u64) -> Result<Vec<SampleId>> {
        let mut v = Vec::new();
        for s in self.block_shards(k) {
            let sh = &self.shards[s as usize];
            let len = self.shard_len(s)?;
            v.extend((0..len).map(|j| SampleId {
                shard: s,
                index: sh.sample(j),
            }));
        }
        v.shuffle(&mut block_rng(self.seed, 3, k));
        Ok(v)
    }

    /// An iterator over the stream from `pos`, yielding each sample with the position after it.
    /// It ends only when a block cannot be made ([`PlanIter::error`] says why).
    pub fn iter_from(&self, pos: Position) -> PlanIter<'_> {
        PlanIter {
            plan: self,
            block: None,
            pos,
            error: None,
        }
    }

    /// The position `n` samples after the start of the stream.
    pub fn position_at(&self, n: u64) -> Result<Position> {
        let mut left = n;
        let mut k = 0;
        loop {
            let len = self.block_len(k)?;
            if left < len {
                return Ok(Position {
                    block: k,
                    offset: left,
                    consumed: n,
                });
            }
            left -= len;
            k += 1;
        }
    }
}

/// Iterator over the stream (see [`Plan::iter_from`]); infinite unless a block cannot be made.
pub struct PlanIter<'a> {
    plan: &'a Plan,
    block: Option<Vec<SampleId>>,
    pos: Position,
    error: Option<anyhow::Error>,
}

/// Consecutive empty blocks after which a plan whose shards are counted when drawn is taken to
/// hold no sample at all.
const MAX_EMPTY_BLOCKS: u32 = 10_000;

impl PlanIter<'_> {
    /// Why the iterator ended (a shard that could not be counted), if it did.
    pub fn error(&mut self) -> Option<anyhow::Error> {
        self.error.take()
    }

    fn load(&mut self) -> bool {
        match self.plan.block(self.pos.block) {
            Ok(b) => {
                self.block = Some(b);
                true
            }
            Err(e) => {
                self.error = Some(e);
                false
            }
        }
    }
}

impl Iterator for PlanIter<'_> {
    type Item = (SampleId, Position);

    fn next(&mut self) -> Option<Self::Item> {
        if self.error.is_some() || (self.block.is_none() && !self.load()) {
            return None;
        }
        let mut empty = 0;
        while self.pos.offset as usize >= self.block.as_ref().map_or(0, Vec::len) {
            self.pos.block += 1;
            self.pos.offset = 0;
            if !self.load() {
                return None;
            }
            empty += 1;
            if empty > MAX_EMPTY_BLOCKS {
                self.error = Some(anyhow::anyhow!(
                    "{MAX_EMPTY_BLOCKS} blocks in a row drew no sample: the shards are empty"
                ));
                return None;
            }
        }
        let id = self.block.as_ref().expect("loaded")[self.pos.offset as usize];
        self.pos.offset += 1;
        self.pos.consumed += 1;
        Some((id, self.pos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn shards(sizes: &[u32], weights: &[f64]) -> Vec<PlanShard> {
        sizes
            .iter()
            .zip(weights)
            .enumerate()
            .map(|(i, (&n, &w))| PlanShard {
                samples: n,
                weight: w,
                subset: None,
                input: i,
            })
            .collect()
    }

    #[test]
    fn without_replacement_sees_each_sample_once_per_pass() {
        let p = Plan::new(
            shards(&[5, 0, 7, 3, 9], &[1.0; 5]),
            Sampling::WithoutReplacement,
            3,
            2,
        )
        .unwrap();
        assert_eq!(p.pass_len(), 24);
        let it: Vec<_> = p.iter_from(Position::default()).take(48).collect();
        for pass in it.chunks(24) {
            let mut seen: Vec<_> = pass.iter().map(|(s, _)| (s.shard, s.index)).collect();
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), 24);
        }
        // Different passes use different orders.
        let a: Vec<_> = it[..24].iter().map(|x| x.0).collect();
        let b: Vec<_> = it[24..].iter().map(|x| x.0).collect();
        assert_ne!(a, b);
    }

    #[test]
    fn resume_from_any_position_gives_the_same_stream() {
        for sampling in [Sampling::Resampled, Sampling::WithoutReplacement] {
            let p = Plan::new(shards(&[4, 6, 5], &[1.0; 3]), sampling, 11, 2).unwrap();
            let full: Vec<_> = p.iter_from(Position::default()).take(60).collect();
            for cut in [0usize, 1, 7, 13, 31] {
                let pos = full[cut].1;
                let rest: Vec<_> = p.iter_from(pos).take(60 - cut - 1).map(|x| x.0).collect();
                let want: Vec<_> = full[cut + 1..].iter().map(|x| x.0).collect();
                assert_eq!(rest, want, "{sampling:?} cut {cut}");
                assert_eq!(p.position_at(cut as u64 + 1).unwrap(), pos);
            }
        }
    }

    /// Issue 16: shards counted when first drawn (pipe: URLs) give the stream of the same
    /// counts given up front; each shard is counted once; a count that fails ends the stream
    /// with the error.
    #[test]
    fn counted_when_drawn_matches_known_counts() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let sizes = [4u32, 6, 5, 3];
        let known = Plan::new(shards(&sizes, &[1.0; 4]), Sampling::Resampled, 5, 2).unwrap();
        let want: Vec<_> = known.iter_from(Position::default()).take(80).collect();
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let counter: Counter = Arc::new(move |i| {
            c.fetch_add(1, Ordering::SeqCst);
            Ok(sizes[i as usize])
        });
        // Shards 1 and 3 have no count (their `samples` field says 0 and is ignored).
        let lazy = Plan::counted_when_drawn(
            shards(&[4, 0, 5, 0], &[1.0; 4]),
            vec![false, true, false, true],
            counter,
            5,
            2,
        )
        .unwrap();
        assert!(!lazy.counts_known());
        let got: Vec<_> = lazy.iter_from(Position::default()).take(80).collect();
        assert_eq!(got, want);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let failing: Counter = Arc::new(|i| anyhow::bail!("pipe for shard {i} failed"));
        let bad =
            Plan::counted_when_drawn(shards(&[1, 1], &[1.0; 2]), vec![true; 2], failing, 0, 1)
                .unwrap();
        let mut it = bad.iter_from(Position::default());
        assert_eq!(it.next(), None);
        let e = format!("{:#}", it.error().unwrap());
        assert!(
            e.contains("pipe for shard") && e.contains("counting"),
            "{e}"
        );
    }

    #[test]
    fn resampled_follows_shard_weights() {
        let p = Plan::new(
            shards(&[10, 10, 10], &[1.0, 2.0, 0.0]),
            Sampling::Resampled,
            0,
            4,
        )
        .unwrap();
        let mut count: HashMap<u32, usize> = HashMap::new();
        for (s, _) in p.iter_from(Position::default()).take(30_000) {
            *count.entry(s.shard).or_default() += 1;
        }
        assert_eq!(count.get(&2), None);
        let r = count[&1] as f64 / count[&0] as f64;
        assert!((r - 2.0).abs() < 0.15, "{r}");
    }

    #[test]
    fn subsets_restrict_the_draw() {
        let mut s = shards(&[10, 4], &[1.0, 1.0]);
        s[0].subset = Some(Arc::new(vec![2, 5]));
        let p = Plan::new(s, Sampling::WithoutReplacement, 1, 8).unwrap();
        assert_eq!(p.pass_len(), 6);
        let got: Vec<_> = p.iter_from(Position::default()).take(6).collect();
        let mut idx0: Vec<u32> = got
            .iter()
            .filter(|x| x.0.shard == 0)
            .map(|x| x.0.index)
            .collect();
        idx0.sort();
        assert_eq!(idx0, [2, 5]);
    }
}
