//! `tic-eval` under MPI (`mpirun -np W tic-eval …`): the tasks spread over the ranks, their
//! results merged on rank 0 in the order one process writes them.
//!
//! * Rank 0 alone reads and writes the output folder. It decides which of the selected tasks
//!   are pending (no record in `eval_results.jsonl` yet) and broadcasts their indices
//!   ([`share_pending`]) before anything is evaluated.
//! * The pending tasks are evaluated in rounds of W ([`rounds`]): in round k, rank r evaluates
//!   pending task k·W + r, so pending task i goes to rank i mod W.
//! * After each round every rank's [`Outcome`] is gathered ([`gather_round`]); rank 0 appends
//!   the round's records in pending order (the order of a single process) with
//!   [`ResultsFile::append_line`](crate::results::ResultsFile::append_line), logs its failures
//!   and syncs the output folder, so an interrupted job loses at most the round in flight and a
//!   rerun resumes after the recorded tasks. A round lasts as long as its slowest task.
//!
//! With one process a round is one task and the gather is the identity: the single-process
//! behaviour, record for record and byte for byte.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tic_dist::Comm;

/// How a selected task ended, as `tic-eval`'s summary table shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Status {
    /// Evaluated and recorded.
    Done {
        /// The record's `main_metric`, if numeric.
        #[serde(with = "opt_f64_bits")]
        main: Option<f64>,
        /// Images evaluated.
        samples: usize,
        /// Image-embedding throughput.
        #[serde(with = "f64_bits")]
        images_per_s: f64,
        /// Text-embedding throughput.
        #[serde(with = "f64_bits")]
        texts_per_s: f64,
    },
    /// Already had a record: not evaluated again.
    Skipped,
    /// Failed with this message (the other tasks go on).
    Failed(String),
}

/// One evaluated task, as sent from the rank that evaluated it to rank 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Index of the task among the run's selected tasks.
    pub task: usize,
    /// Its `eval_results.jsonl` line ([`EvalRecord::to_line`](crate::results::EvalRecord::to_line))
    /// when it succeeded: rank 0 writes these bytes, so records do not depend on which rank
    /// made them.
    pub record: Option<String>,
    /// How it ended.
    pub status: Status,
    /// Wall-clock seconds it took on its rank.
    #[serde(with = "f64_bits")]
    pub secs: f64,
}

/// Floats travel as their bits, so what rank 0 prints is what the evaluating rank measured.
mod f64_bits {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(x.to_bits())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        u64::deserialize(d).map(f64::from_bits)
    }
}

mod opt_f64_bits {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(x: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        x.map(f64::to_bits).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Option::<u64>::deserialize(d).map(|b| b.map(f64::from_bits))
    }
}

/// Rank 0's `pending` (indices of the selected tasks still to evaluate, ascending) on every
/// rank; other ranks' `pending` is ignored.
pub fn share_pending(comm: &dyn Comm, pending: Vec<usize>) -> Result<Vec<usize>> {
    if comm.size() == 1 {
        return Ok(pending);
    }
    let bytes = if comm.rank() == 0 {
        serde_json::to_vec(&pending)?
    } else {
        Vec::new()
    };
    let got = comm.broadcast_bytes(0, bytes)?;
    serde_json::from_slice(&got).context("the pending tasks broadcast by rank 0")
}

/// The rounds of `pending` on `size` ranks: W consecutive pending tasks each, the r-th of a
/// round for rank r (the last round may leave the higher ranks idle).
pub fn rounds(pending: &[usize], size: usize) -> std::slice::Chunks<'_, usize> {
    pending.chunks(size.max(1))
}

/// Every rank's outcome of `round` (this rank's is `mine`: `None` when the round has no task
/// for it), in round order, which is pending order. Collective: every rank calls it once per
/// round.
pub fn gather_round(
    comm: &dyn Comm,
    round: &[usize],
    mine: Option<&Outcome>,
) -> Result<Vec<Outcome>> {
    let bytes = match mine {
        Some(o) => serde_json::to_vec(o)?,
        None => Vec::new(),
    };
    let all = comm.all_gather_bytes(bytes)?;
    let got: Vec<Outcome> = all
        .iter()
        .enumerate()
        .filter(|(_, b)| !b.is_empty())
        .map(|(r, b)| {
            serde_json::from_slice(b).with_context(|| format!("the outcome sent by rank {r}"))
        })
        .collect::<Result<_>>()?;
    let tasks: Vec<usize> = got.iter().map(|o| o.task).collect();
    if tasks != round {
        bail!("the ranks evaluated tasks {tasks:?} in a round of tasks {round:?}");
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_deal_pending_tasks_to_ranks_in_turn() {
        let pending = [0, 2, 3, 5, 6];
        let r: Vec<&[usize]> = rounds(&pending, 2).collect();
        assert_eq!(r, [&[0, 2][..], &[3, 5], &[6]]);
        // Rank r gets pending task i when i mod W = r.
        let rank1: Vec<usize> = rounds(&pending, 2)
            .filter_map(|r| r.get(1).copied())
            .collect();
        assert_eq!(rank1, [2, 5]);
        assert_eq!(rounds(&pending, 1).count(), 5);
    }

    #[test]
    fn outcomes_travel_bit_exactly() {
        let o = Outcome {
            task: 3,
            record: Some(r#"{"key": "k", "dataset": "k", "metrics": {}}"#.into()),
            status: Status::Done {
                main: Some(0.1 + 0.2),
                samples: 7,
                images_per_s: 1.0 / 3.0,
                texts_per_s: f64::NAN,
            },
            secs: 1e-300,
        };
        let solo = tic_dist::Solo;
        let got = gather_round(&solo, &[3], Some(&o)).unwrap();
        let Status::Done { texts_per_s, .. } = got[0].status else {
            panic!("{got:?}")
        };
        assert!(texts_per_s.is_nan());
        let mut a = got[0].clone();
        let mut b = o.clone();
        for x in [&mut a, &mut b] {
            if let Status::Done { texts_per_s, .. } = &mut x.status {
                *texts_per_s = 0.0;
            }
        }
        assert_eq!(a, b);
        let failed = Outcome {
            task: 1,
            record: None,
            status: Status::Failed("no such set".into()),
            secs: 0.5,
        };
        assert_eq!(gather_round(&solo, &[1], Some(&failed)).unwrap(), [failed]);
        assert!(gather_round(&solo, &[2], Some(&o)).is_err());
        assert!(gather_round(&solo, &[], None).unwrap().is_empty());
        assert_eq!(share_pending(&solo, vec![1, 4]).unwrap(), [1, 4]);
    }
}
