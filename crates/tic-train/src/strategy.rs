//! The continual-learning strategies of TiC-CLIP (`--strategy`) and the data each one trains
//! on at time step `t` (0-based) with time steps `0..=t` available.
//!
//! `D` is the number of samples of the new step `t`; `C` the per-step budget (samples seen).
//!
//! | strategy | init | data | budget |
//! | --- | --- | --- | --- |
//! | `sequential` | previous step's model | step `t` only | C |
//! | `cumulative-all` | previous | all of steps `0..=t` | C |
//! | `cumulative-exp` | previous | step `t` + replay of size D: D/2 from `t−1`, D/4 from `t−2`, …, the oldest step gets the remainder | C |
//! | `cumulative-equal` | previous | step `t` + replay of size D split equally over `0..t` (remainder to the most recent) | C |
//! | `restart` | random | all of `0..=t` | C |
//! | `oracle` | random | all of `0..=t` | (t+1)·C |
//! | `lwf` | previous | step `t` only, + KL distillation from the previous model | C |
//! | `patching` | previous (patched) | step `t` only, then interpolation with the previous model | C |
//!
//! Replay buffers are nested: the samples kept from step `s` are the first `n` of a fixed
//! permutation of step `s` (seeded by `(seed, s)`), so a later, smaller buffer is a subset of
//! an earlier one, as when a real buffer discards. A buffer share larger than the step itself is
//! capped at the step's size. Every kept sample is equally likely, with or without replacement
//! (with replacement: shards drawn uniformly, each contributing its kept samples).

use std::sync::Arc;

use anyhow::{bail, Result};
use clap::ValueEnum;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::plan::{mix, PlanShard};

/// A continual-learning method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// New data only, warm start.
    Sequential,
    /// All data so far, warm start.
    CumulativeAll,
    /// New data + exponential replay buffer, warm start.
    CumulativeExp,
    /// New data + equal replay buffer, warm start.
    CumulativeEqual,
    /// All data so far, from scratch, same budget.
    Restart,
    /// All data so far, from scratch, budget = sum of the budgets so far.
    Oracle,
    /// Sequential + distillation from the previous model (Learning without Forgetting).
    Lwf,
    /// Sequential, then weight interpolation with the previous model.
    Patching,
}

impl Strategy {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Sequential => "sequential",
            Strategy::CumulativeAll => "cumulative-all",
            Strategy::CumulativeExp => "cumulative-exp",
            Strategy::CumulativeEqual => "cumulative-equal",
            Strategy::Restart => "restart",
            Strategy::Oracle => "oracle",
            Strategy::Lwf => "lwf",
            Strategy::Patching => "patching",
        }
    }

    /// Starts from the previous step's model (for `t ≥ 1`).
    pub fn warm_start(self) -> bool {
        !matches!(self, Strategy::Restart | Strategy::Oracle)
    }

    /// Budget multiplier at step `t` (0-based).
    pub fn budget_multiplier(self, t: usize) -> u64 {
        if self == Strategy::Oracle {
            t as u64 + 1
        } else {
            1
        }
    }
}

/// How many samples of each time step `0..=t` the strategy trains on (`sizes[s]` = samples of
/// step `s`). `None` for a step means "all of it".
pub fn allocation(strategy: Strategy, sizes: &[u64], t: usize) -> Result<Vec<Option<u64>>> {
    if t >= sizes.len() {
        bail!("time step {t} but only {} steps given", sizes.len());
    }
    let mut out = vec![Some(0); t + 1];
    out[t] = None;
    let d = sizes[t];
    match strategy {
        Strategy::Sequential | Strategy::Lwf | Strategy::Patching => {}
        Strategy::CumulativeAll | Strategy::Restart | Strategy::Oracle => {
            out.iter_mut().for_each(|x| *x = None);
        }
        Strategy::CumulativeExp if t > 0 => {
            let mut given = 0;
            for s in (1..t).rev() {
                let k = (t - s) as u32;
                let n = d >> k;
                out[s] = Some(n);
                given += n;
            }
            out[0] = Some(d - given);
        }
        Strategy::CumulativeEqual if t > 0 => {
            let base = d / t as u64;
            let rem = (d % t as u64) as usize;
            for (s, slot) in out.iter_mut().enumerate().take(t) {
                // The remainder goes to the most recent steps.
                *slot = Some(base + u64::from(s >= t - rem));
            }
        }
        Strategy::CumulativeExp | Strategy::CumulativeEqual => {}
    }
    for (s, slot) in out.iter_mut().enumerate() {
        if let Some(n) = slot {
            *n = (*n).min(sizes[s]);
        }
    }
    Ok(out)
}

/// Restricts the shards of time step `step` to `n` samples: the first `n` of a permutation of
/// the step's samples seeded by `(seed, step)`. Shards keep their order and get weight 1
/// (uniform shard draws: each kept sample equally likely).
pub fn keep_subset(shards: &mut [PlanShard], n: Option<u64>, seed: u64, step: usize) {
    let total: u64 = shards.iter().map(|s| s.samples as u64).sum();
    match n {
        None => {}
        Some(n) if n >= total => {}
        Some(n) => {
            let mut all: Vec<(u32, u32)> = shards
                .iter()
                .enumerate()
                .flat_map(|(i, s)| (0..s.samples).map(move |j| (i as u32, j)))
                .collect();
            all.shuffle(&mut ChaCha8Rng::seed_from_u64(mix(
                seed ^ mix(step as u64 + 1)
            )));
            let mut per: Vec<Vec<u32>> = vec![Vec::new(); shards.len()];
            for &(i, j) in &all[..n as usize] {
                per[i as usize].push(j);
            }
            for (s, mut keep) in shards.iter_mut().zip(per) {
                keep.sort_unstable();
                s.subset = Some(Arc::new(keep));
            }
        }
    }
    // Shards are drawn uniformly and each contributes its kept samples, so every kept sample
    // is equally likely (a draw ∝ kept size would count the size twice).
    for s in shards.iter_mut() {
        s.weight = 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Plan, Position, Sampling};

    #[test]
    fn allocations_match_the_definitions() {
        let sizes = [1000, 800, 1200, 640];
        use Strategy::*;
        let a = |s, t| allocation(s, &sizes, t).unwrap();
        assert_eq!(a(Sequential, 3), [Some(0), Some(0), Some(0), None]);
        assert_eq!(a(Lwf, 2), [Some(0), Some(0), None]);
        assert_eq!(a(CumulativeAll, 2), [None, None, None]);
        assert_eq!(a(Oracle, 3), [None; 4]);
        // D = 640: 320 from t-1, 160 from t-2, the remaining 160 from the oldest.
        assert_eq!(a(CumulativeExp, 3), [Some(160), Some(160), Some(320), None]);
        assert_eq!(a(CumulativeExp, 1), [Some(800), None]);
        // D = 1200 over 2 past steps, capped by their sizes.
        assert_eq!(a(CumulativeEqual, 2), [Some(600), Some(600), None]);
        assert_eq!(
            a(CumulativeEqual, 3),
            [Some(213), Some(213), Some(214), None]
        );
        assert_eq!(Oracle.budget_multiplier(3), 4);
        assert_eq!(Restart.budget_multiplier(3), 1);
        assert!(!Restart.warm_start() && CumulativeExp.warm_start());
        // Cap: a buffer share larger than the old step.
        assert_eq!(
            allocation(CumulativeExp, &[10, 1000], 1).unwrap(),
            [Some(10), None]
        );
    }

    /// The per-split sample counts each strategy actually draws in one pass.
    #[test]
    fn drawn_counts_per_split() {
        let sizes = [300u32, 200, 250, 160];
        let step_shards = |s: usize| -> Vec<PlanShard> {
            // Two shards per step, uneven.
            let n = sizes[s];
            [n / 3, n - n / 3]
                .into_iter()
                .map(|k| PlanShard {
                    samples: k,
                    weight: 1.0,
                    subset: None,
                    input: s,
                })
                .collect()
        };
        let sizes64: Vec<u64> = sizes.iter().map(|&x| x as u64).collect();
        for strat in [
            Strategy::Sequential,
            Strategy::CumulativeAll,
            Strategy::CumulativeExp,
            Strategy::CumulativeEqual,
            Strategy::Oracle,
        ] {
            let t = 3;
            let alloc = allocation(strat, &sizes64, t).unwrap();
            let mut shards = Vec::new();
            for (s, n) in alloc.iter().enumerate() {
                if *n == Some(0) {
                    continue;
                }
                let mut sh = step_shards(s);
                keep_subset(&mut sh, *n, 7, s);
                shards.extend(sh);
            }
            let plan = Plan::new(shards, Sampling::WithoutReplacement, 1, 3).unwrap();
            let pass = plan.pass_len() as usize;
            let mut counts = [0u64; 4];
            let mut seen = std::collections::HashSet::new();
            for (id, _) in plan.iter_from(Position::default()).take(pass) {
                counts[plan.shards()[id.shard as usize].input] += 1;
                assert!(seen.insert(id));
            }
            let want: Vec<u64> = alloc
                .iter()
                .enumerate()
                .map(|(s, n)| n.unwrap_or(sizes64[s]))
                .collect();
            assert_eq!(counts.to_vec(), want, "{strat:?}");
            if strat == Strategy::CumulativeExp {
                assert_eq!(counts, [40, 40, 80, 160]);
            }
            // With replacement, shares follow the same proportions in expectation.
            let rplan = Plan::new(plan.shards().to_vec(), Sampling::Resampled, 2, 3).unwrap();
            let mut rc = [0f64; 4];
            let draws = 40_000;
            for (id, _) in rplan.iter_from(Position::default()).take(draws) {
                rc[rplan.shards()[id.shard as usize].input] += 1.0;
            }
            for s in 0..4 {
                let expect = want[s] as f64 / pass as f64;
                let got = rc[s] / draws as f64;
                assert!(
                    (got - expect).abs() < 0.02,
                    "{strat:?} split {s}: {got} vs {expect}"
                );
            }
        }
    }

    #[test]
    fn buffers_are_nested() {
        let mk = || {
            vec![PlanShard {
                samples: 100,
                weight: 1.0,
                subset: None,
                input: 0,
            }]
        };
        let (mut a, mut b) = (mk(), mk());
        keep_subset(&mut a, Some(40), 3, 0);
        keep_subset(&mut b, Some(20), 3, 0);
        let sa = a[0].subset.clone().unwrap();
        let sb = b[0].subset.clone().unwrap();
        assert_eq!((sa.len(), sb.len()), (40, 20));
        assert!(sb.iter().all(|x| sa.contains(x)));
    }
}
