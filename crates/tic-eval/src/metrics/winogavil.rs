//! WinoGAViL (`misc/winogavil`) scored as DataComp's `eval_utils/wino_eval.py` (7fdb5c6) does,
//! as pure functions over similarity scores so that the definitions are tested without a model.
//!
//! Per instance (a cue and its 5, 6, 10 or 12 candidate images, `k` of them true
//! associations): the prompt is [`clip_prompt`] of the cue; the prediction is the `k`
//! candidates with the highest text·image similarity ([`top_k_prediction`]); the score is
//! scikit-learn's binary `jaccard_score(y_true, y_pred)` ([`jaccard`]). The record's fields are
//! the mean score over all instances and over those with 5, 6, 10, 12, ≤ 6 and ≥ 10 candidates
//! ([`WinogavilMetrics`]); the main metric is `jaccard_score_10-12`.

use super::classification::numpy_mean;
use serde_json::{Map, Value};
use tic_shards::pyjson;

/// DataComp's `get_clip_prompt`: the cue lower-cased, after "An " when it starts with a
/// (lower-case ASCII) vowel, else "A ". `None` for an empty cue (Python raises `IndexError`).
pub fn clip_prompt(cue: &str) -> Option<String> {
    let item = cue.to_lowercase();
    let first = item.chars().next()?;
    Some(if "aeiou".contains(first) {
        format!("An {item}")
    } else {
        format!("A {item}")
    })
}

/// The predicted associations: `np.isin(arange(n), np.argsort(scores)[-k:])`, the `k`
/// candidates with the highest scores. Ties are broken as a stable ascending sort breaks them
/// (numpy's `argsort` on these ≤ 16-element rows is an insertion sort): of equal scores, the
/// later candidate ranks higher. `k = 0` selects every candidate, as `[-0:]` does in Python.
pub fn top_k_prediction(scores: &[f32], k: usize) -> Vec<bool> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let keep = if k == 0 {
        scores.len()
    } else {
        k.min(scores.len())
    };
    let mut pred = vec![false; scores.len()];
    for &i in &order[scores.len() - keep..] {
        pred[i] = true;
    }
    pred
}

/// scikit-learn's binary `jaccard_score(y_true, y_pred)`: `|true ∧ pred| / |true ∨ pred|`, and
/// 0 when both are empty (its `zero_division="warn"` result).
pub fn jaccard(y_true: &[bool], y_pred: &[bool]) -> f64 {
    let both = y_true
        .iter()
        .zip(y_pred)
        .filter(|(t, p)| **t && **p)
        .count();
    let either = y_true
        .iter()
        .zip(y_pred)
        .filter(|(t, p)| **t || **p)
        .count();
    if either == 0 {
        0.0
    } else {
        both as f64 / either as f64
    }
}

/// One instance scored: its number of candidates and its Jaccard index.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InstanceScore {
    /// Number of candidate images (DataComp's group).
    pub candidates: usize,
    /// `jaccard_score` of the top-k prediction.
    pub jaccard: f64,
}

/// Scores one instance from its text·image similarities (`scores[j]` for candidate `j`) and
/// which candidates are true associations; `k` is their number.
pub fn score_instance(scores: &[f32], y_true: &[bool]) -> InstanceScore {
    let k = y_true.iter().filter(|t| **t).count();
    let pred = top_k_prediction(scores, k);
    InstanceScore {
        candidates: scores.len(),
        jaccard: jaccard(y_true, &pred),
    }
}

/// The fields `evaluate_winogavil_dataset` returns. A mean over no instance is `None`
/// (numpy's `NaN`, recorded as Python's bare `NaN`, as DataComp writes it).
#[derive(Debug, Clone, PartialEq)]
pub struct WinogavilMetrics {
    /// Each field name with its value, in DataComp's order.
    pub fields: Vec<(&'static str, Option<f64>)>,
}

/// Whether an instance with this many candidates belongs to a group.
type GroupMember = fn(usize) -> bool;

/// The record fields and which instances each averages (by number of candidates).
const GROUPS: [(&str, GroupMember); 7] = [
    ("avg_jaccard_score", |_| true),
    ("jaccard_score_5", |n| n == 5),
    ("jaccard_score_6", |n| n == 6),
    ("jaccard_score_10", |n| n == 10),
    ("jaccard_score_12", |n| n == 12),
    ("jaccard_score_5-6", |n| n <= 6),
    ("jaccard_score_10-12", |n| n >= 10),
];

/// The main metric DataComp's task list names for WinoGAViL.
pub const MAIN_METRIC: &str = "jaccard_score_10-12";

impl WinogavilMetrics {
    /// The group means of `scores` (numpy `.mean()` of the selected instances: pairwise
    /// summation).
    pub fn from_scores(scores: &[InstanceScore]) -> Self {
        let fields = GROUPS
            .iter()
            .map(|(name, member)| {
                let sel: Vec<f64> = scores
                    .iter()
                    .filter(|s| member(s.candidates))
                    .map(|s| s.jaccard)
                    .collect();
                (*name, numpy_mean(&sel))
            })
            .collect();
        Self { fields }
    }

    /// The value of field `name`.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.fields.iter().find(|(n, _)| *n == name)?.1
    }

    /// The record's `metrics` object (an empty group's mean is `NaN`, see
    /// `tic_shards::pyjson::float`).
    pub fn to_json(&self) -> Map<String, Value> {
        self.fields
            .iter()
            .map(|(n, v)| (n.to_string(), pyjson::float(v.unwrap_or(f64::NAN))))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_as_datacomp_builds_them() {
        assert_eq!(clip_prompt("Apple").unwrap(), "An apple");
        assert_eq!(clip_prompt("tree").unwrap(), "A tree");
        assert_eq!(clip_prompt("Umbrella stand").unwrap(), "An umbrella stand");
        // Only a, e, i, o, u count as vowels ("y" does not).
        assert_eq!(clip_prompt("Yacht").unwrap(), "A yacht");
        assert_eq!(clip_prompt(""), None);
    }

    #[test]
    fn top_k_and_its_edges() {
        let s = [0.1, 0.9, 0.5, 0.7, -0.2];
        assert_eq!(top_k_prediction(&s, 2), [false, true, false, true, false]);
        // k = 0 is `[-0:]`: everything.
        assert_eq!(top_k_prediction(&s, 0), [true; 5]);
        // Ties: the later candidate wins (stable ascending order).
        assert_eq!(top_k_prediction(&[0.5, 0.5, 0.5], 1), [false, false, true]);
    }

    #[test]
    fn jaccard_as_sklearn() {
        let t = [true, true, false, false];
        assert_eq!(jaccard(&t, &[true, false, true, false]), 1.0 / 3.0);
        assert_eq!(jaccard(&t, &t), 1.0);
        assert_eq!(jaccard(&[false; 3], &[false; 3]), 0.0);
        assert_eq!(jaccard(&t, &[false, false, true, true]), 0.0);
    }

    #[test]
    fn groups_and_empty_groups() {
        let sc = |candidates, jaccard| InstanceScore {
            candidates,
            jaccard,
        };
        let m = WinogavilMetrics::from_scores(&[sc(5, 1.0), sc(10, 0.5), sc(12, 0.0)]);
        assert_eq!(m.get("avg_jaccard_score"), Some(0.5));
        assert_eq!(m.get("jaccard_score_5"), Some(1.0));
        assert_eq!(m.get("jaccard_score_6"), None);
        assert_eq!(m.get("jaccard_score_5-6"), Some(1.0));
        assert_eq!(m.get(MAIN_METRIC), Some(0.25));
        let j = m.to_json();
        assert_eq!(j.len(), 7);
        assert!(pyjson::as_float(&j["jaccard_score_6"]).unwrap().is_nan());
        assert_eq!(pyjson::to_string(&j["jaccard_score_6"]), "NaN");
    }
}
