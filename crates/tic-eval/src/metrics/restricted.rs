//! Restricted zero-shot accuracy over groups of classes (TiC-CLIP's "restricted ImageNet").
//!
//! TiC-CLIP's `imagenet_restricted_classes.py` groups the 1000 ImageNet classes under WordNet
//! nodes (dog, bird, motor_vehicle, …); `tic-restricted-classes` writes those groups as JSON
//! `{"group": [sorted class ids], …}`. The original repository stops at printing the groups,
//! so the accuracy itself is defined here, following the paper's "restricted zero-shot
//! accuracy" (zero-shot classification among the classes of one group only):
//!
//! For a group `G`, take the samples whose label is in `G`; predict the argmax of the logits
//! **restricted to the columns of `G`** (ties: lowest class id); `acc1 = correct / samples`.
//! Logits are CLIP_benchmark's (see [`super::classification`]). Samples outside `G` do not
//! count; a group none of whose classes occur gets `acc1 = None`. For comparison we also
//! report the ordinary (unrestricted, all-classes) top-1 accuracy on the same samples.

use super::classification::ZeroShotClassifier;
use crate::error::MetricsError;
use crate::matrix::{for_each_score_row, Matrix, DEFAULT_BLOCK_ELEMS};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::Path;

/// Named groups of class ids, in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClassGroups {
    groups: Vec<(String, Vec<usize>)>,
}

impl ClassGroups {
    /// Builds groups from `(name, class ids)` pairs; ids are sorted and must be unique.
    pub fn new(groups: Vec<(String, Vec<usize>)>) -> Result<Self, MetricsError> {
        let mut out = Vec::with_capacity(groups.len());
        for (name, mut ids) in groups {
            if ids.is_empty() {
                return Err(MetricsError::Empty(format!(
                    "class group {name:?} has no class"
                )));
            }
            ids.sort_unstable();
            if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
                return Err(MetricsError::Shape(format!(
                    "class group {name:?} lists class {} twice",
                    w[0]
                )));
            }
            out.push((name, ids));
        }
        Ok(Self { groups: out })
    }

    /// Parses the JSON written by `tic-restricted-classes`: `{"name": [ids...], ...}`.
    pub fn from_json_str(text: &str) -> anyhow::Result<Self> {
        let map: Map<String, Value> =
            serde_json::from_str(text).context("class groups must be a JSON object")?;
        let mut groups = Vec::with_capacity(map.len());
        for (name, v) in map {
            let ids: Vec<usize> = serde_json::from_value(v)
                .with_context(|| format!("group {name:?}: expected a list of class ids"))?;
            groups.push((name, ids));
        }
        Ok(Self::new(groups)?)
    }

    /// Reads [`Self::from_json_str`] from a file.
    pub fn from_path(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading class groups {}", path.display()))?;
        Self::from_json_str(&text)
            .with_context(|| format!("parsing class groups {}", path.display()))
    }

    /// The groups as `(name, sorted class ids)`.
    pub fn groups(&self) -> &[(String, Vec<usize>)] {
        &self.groups
    }

    /// Fails if a group names a class outside `0..num_classes`.
    pub fn check_num_classes(&self, num_classes: usize) -> Result<(), MetricsError> {
        for (gi, (_, ids)) in self.groups.iter().enumerate() {
            if let Some(&bad) = ids.iter().find(|&&c| c >= num_classes) {
                return Err(MetricsError::IdOutOfRange {
                    what: "class group",
                    index: gi,
                    id: bad,
                    limit: num_classes,
                });
            }
        }
        Ok(())
    }

    /// For each class, the indices of the groups that contain it.
    fn membership(&self, num_classes: usize) -> Vec<Vec<usize>> {
        let mut m = vec![Vec::new(); num_classes];
        for (gi, (_, ids)) in self.groups.iter().enumerate() {
            for &c in ids {
                m[c].push(gi);
            }
        }
        m
    }
}

/// Restricted accuracy of one class group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestrictedAccuracy {
    /// Group name.
    pub group: String,
    /// Number of classes in the group.
    pub num_classes: usize,
    /// Number of samples whose label is in the group.
    pub num_samples: usize,
    /// Top-1 accuracy among the group's classes only (`None` without samples).
    pub acc1: Option<f64>,
    /// Ordinary all-class top-1 accuracy on the same samples (`None` without samples).
    pub acc1_unrestricted: Option<f64>,
}

impl RestrictedAccuracy {
    /// Metric entries for a results record: `restricted_acc1/{group}`.
    pub fn to_json(results: &[RestrictedAccuracy]) -> Map<String, Value> {
        results
            .iter()
            .map(|r| {
                (
                    format!("restricted_acc1/{}", r.group),
                    r.acc1.map_or(Value::Null, Value::from),
                )
            })
            .collect()
    }
}

/// Per-sample outcome: whether the unrestricted top-1 is right, and for each group containing
/// the label whether the restricted top-1 is right.
fn sample_outcome(
    row: &[f32],
    target: usize,
    member_of: &[usize],
    groups: &ClassGroups,
) -> (bool, Vec<(usize, bool)>) {
    let argmax_over = |cols: &mut dyn Iterator<Item = usize>| {
        let mut best: Option<(usize, f32)> = None;
        for c in cols {
            if best.is_none_or(|(_, v)| row[c] > v) {
                best = Some((c, row[c]));
            }
        }
        best.map(|(c, _)| c)
    };
    let top1 = argmax_over(&mut (0..row.len()));
    let per_group = member_of
        .iter()
        .map(|&g| {
            let ids = &groups.groups[g].1;
            (g, argmax_over(&mut ids.iter().copied()) == Some(target))
        })
        .collect();
    (top1 == Some(target), per_group)
}

fn aggregate(
    groups: &ClassGroups,
    outcomes: Vec<(bool, Vec<(usize, bool)>)>,
) -> Vec<RestrictedAccuracy> {
    let k = groups.groups.len();
    let mut samples = vec![0usize; k];
    let mut right = vec![0usize; k];
    let mut right_all = vec![0usize; k];
    for (top1_ok, per_group) in outcomes {
        for (g, ok) in per_group {
            samples[g] += 1;
            right[g] += usize::from(ok);
            right_all[g] += usize::from(top1_ok);
        }
    }
    groups
        .groups
        .iter()
        .enumerate()
        .map(|(g, (name, ids))| {
            let frac = |c: usize| (samples[g] > 0).then(|| c as f64 / samples[g] as f64);
            RestrictedAccuracy {
                group: name.clone(),
                num_classes: ids.len(),
                num_samples: samples[g],
                acc1: frac(right[g]),
                acc1_unrestricted: frac(right_all[g]),
            }
        })
        .collect()
}

/// Restricted accuracy from a full logit matrix (`n × num_classes`).
pub fn from_logits(
    logits: &Matrix,
    targets: &[usize],
    groups: &ClassGroups,
) -> Result<Vec<RestrictedAccuracy>, MetricsError> {
    check(logits.rows(), logits.cols(), targets, groups)?;
    let member = groups.membership(logits.cols());
    let outcomes = (0..logits.rows())
        .map(|i| sample_outcome(logits.row(i), targets[i], &member[targets[i]], groups))
        .collect();
    Ok(aggregate(groups, outcomes))
}

/// Restricted accuracy for raw image features, computing logits in blocks.
pub fn evaluate(
    classifier: &ZeroShotClassifier,
    image_features: &Matrix,
    targets: &[usize],
    groups: &ClassGroups,
) -> Result<Vec<RestrictedAccuracy>, MetricsError> {
    let c = classifier.num_classes();
    check(image_features.rows(), c, targets, groups)?;
    if image_features.cols() != classifier.dim() {
        return Err(MetricsError::Shape(format!(
            "image features have dimension {}, classifier has {}",
            image_features.cols(),
            classifier.dim()
        )));
    }
    image_features.check_finite("image features")?;
    let mut x = image_features.clone();
    x.l2_normalize_rows();
    x.scale(super::classification::LOGIT_SCALE);
    let member = groups.membership(c);
    let outcomes = for_each_score_row(&x, classifier.weights(), DEFAULT_BLOCK_ELEMS, |i, row| {
        sample_outcome(row, targets[i], &member[targets[i]], groups)
    })?;
    Ok(aggregate(groups, outcomes))
}

fn check(
    rows: usize,
    num_classes: usize,
    targets: &[usize],
    groups: &ClassGroups,
) -> Result<(), MetricsError> {
    super::classification::check_targets(rows, targets, num_classes)?;
    groups.check_num_classes(num_classes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_restricted_accuracy() {
        // 4 classes; group "ab" = {0, 1}, group "bcd" = {1, 2, 3}.
        let groups = ClassGroups::from_json_str(r#"{"ab": [1, 0], "bcd": [1, 2, 3]}"#).unwrap();
        let logits = Matrix::new(
            4,
            4,
            vec![
                0.1, 0.5, 0.9,
                0.0, // target 1: global top1 = 2 (wrong); in ab: 1 (right); in bcd: 2 (wrong)
                0.3, 0.2, 0.0, 0.9, // target 0: global 3 wrong; ab -> 0 right
                0.0, 0.0, 0.7,
                0.7, // target 3: global 2 wrong (tie, lower id); bcd -> 2 wrong
                0.0, 0.0, 0.0, 0.0, // target 2: all tied -> 0 globally, 1 in bcd: wrong
            ],
        )
        .unwrap();
        let r = from_logits(&logits, &[1, 0, 3, 2], &groups).unwrap();
        assert_eq!(r[0].group, "ab");
        assert_eq!((r[0].num_classes, r[0].num_samples), (2, 2));
        assert_eq!(r[0].acc1, Some(1.0));
        assert_eq!(r[0].acc1_unrestricted, Some(0.0));
        assert_eq!((r[1].num_classes, r[1].num_samples), (3, 3));
        assert_eq!(r[1].acc1, Some(0.0));
        let j = RestrictedAccuracy::to_json(&r);
        assert_eq!(j["restricted_acc1/ab"], 1.0);
    }

    #[test]
    fn empty_group_samples_and_bad_ids() {
        let groups = ClassGroups::from_json_str(r#"{"x": [2]}"#).unwrap();
        let logits = Matrix::new(1, 3, vec![1.0, 0.0, 0.0]).unwrap();
        let r = from_logits(&logits, &[0], &groups).unwrap();
        assert_eq!(r[0].acc1, None);
        assert!(from_logits(&Matrix::new(1, 2, vec![0.0; 2]).unwrap(), &[0], &groups).is_err());
        assert!(ClassGroups::from_json_str(r#"{"x": [1, 1]}"#).is_err());
        assert!(ClassGroups::from_json_str(r#"{"x": []}"#).is_err());
        assert!(ClassGroups::from_json_str(r#"["x"]"#).is_err());
    }

    #[test]
    fn blocked_evaluation_matches_logits() {
        let clf = ZeroShotClassifier::from_weights(
            Matrix::new(3, 2, vec![1.0, 0.0, 0.0, 1.0, -0.6, 0.8]).unwrap(),
        );
        let x = Matrix::new(4, 2, vec![1.0, 0.1, -1.0, 0.9, 0.2, 1.0, -0.1, -1.0]).unwrap();
        let t = [0, 2, 1, 2];
        let groups = ClassGroups::from_json_str(r#"{"g": [1, 2], "h": [0, 2]}"#).unwrap();
        let a = evaluate(&clf, &x, &t, &groups).unwrap();
        let b = from_logits(&clf.logits(&x).unwrap(), &t, &groups).unwrap();
        assert_eq!(a, b);
    }
}
