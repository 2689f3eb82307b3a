//! DataComp's group evaluators for WILDS (iWildCam, Camelyon17, FMoW) and the fairness sets
//! Dollar Street and GeoDE (`eval_utils/wilds_eval.py`, `fairness_eval.py` at 7fdb5c6, over the
//! `wilds` 2.0.0 package's `CombinatorialGrouper`, `Accuracy`, `Recall`, `F1` and
//! `WILDSDataset.standard_group_eval`), as pure functions of the zero-shot predictions and
//! each sample's `npy` metadata row.
//!
//! Why it looks like this: these tasks' main metrics (`F1-macro_all`, `acc_worst_region`,
//! `acc_top5_wg`, `acc_wg`) and per-group fields come from WILDS code whose details decide the
//! numbers, so each detail is kept:
//!
//! * **Groups** ([`Grouper`]; one field here, several for FairFace's gender × race): `n_groups = max + 1` of that field over the whole set
//!   (a missing value is an empty group); group `g` is named `{field}:{g}` (the evaluators set
//!   no `metadata_map`, so FMoW's "Other" region is `region:5` and DataComp's `"Other" in
//!   group_str` skip never fires: it counts towards `acc_worst_region`). A negative value is
//!   an error, as in `CombinatorialGrouper`.
//! * **Group accuracy**: DataComp replaces WILDS' `avg_over_groups` with a float32 scatter-add
//!   divided by the float32 counts, so a group's accuracy is `hits / count` in `f32` (written
//!   as that `f32`'s `f64` value), an empty group's is `0/0 = NaN` with count `0.0`; the
//!   worst group is the minimum over non-empty groups (`0.0` when none).
//! * **Averages**: `acc_avg` is the `f32` mean of the element-wise hits; iWildCam's
//!   `recall-macro_all` / `F1-macro_all` are scikit-learn's (1.1.3) `recall_score` /
//!   `f1_score` with `average="macro"`, `labels=unique(y_true)` (a label never predicted has
//!   precision 0, and F1 0), averaged with numpy's pairwise mean.
//! * **Predictions**: the argmax (lowest index among ties, `torch.argmax`); Dollar Street's
//!   top-5 hit is "the target's rank < 5" (`torch.topk(logits, 5)`, then
//!   `(y_pred == y_true[:, None]).any(-1)`).
//!
//! The fields, in the order DataComp's `metrics.update(...)` adds them after `acc1`, `acc5`,
//! `mean_per_class_recall`: iWildCam `acc_avg`, `recall-macro_all`, `F1-macro_all` (its
//! evaluator builds a `location` grouper but does not use it); Camelyon17 `acc_avg`,
//! `acc_slide:N`, `count_slide:N`…, `acc_wg`; FMoW `acc_avg`, `acc_year:N`, `count_year:N`…,
//! `acc_worst_year`, `acc_region:N`, `count_region:N`…, `acc_worst_region`; Dollar Street
//! `acc_top5_avg`, `acc_top5_income_ds:N`, `count_income_ds:N`…, `acc_top5_wg`; GeoDE
//! `acc_avg`, `acc_region:N`, `count_region:N`…, `acc_wg`.

use crate::error::MetricsError;
use crate::metrics::classification::{numpy_mean, Predictions};
use serde_json::{Map, Value};

/// One of DataComp's five group evaluators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupEvaluator {
    /// `wilds/iwildcam`: accuracy, macro recall, macro F1.
    IWildCam,
    /// `wilds/camelyon17`: accuracy per slide.
    Camelyon17,
    /// `wilds/fmow`: accuracy per year and per region.
    FMoW,
    /// `fairness/dollar_street`: top-5 accuracy per income group.
    DollarStreet,
    /// `fairness/geode`: accuracy per region.
    GeoDE,
}

/// The metric fields one evaluator returns, in DataComp's order (counts are floats there).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupMetrics(pub Vec<(String, f64)>);

impl GroupMetrics {
    /// The value of a field.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.iter().find(|(k, _)| k == name).map(|&(_, v)| v)
    }

    /// The fields as record metrics; a NaN (an empty group) becomes the value
    /// `tic_shards::pyjson` writes as Python's bare `NaN`.
    pub fn to_json(&self) -> Map<String, Value> {
        self.0
            .iter()
            .map(|(k, v)| (k.clone(), tic_shards::pyjson::float(*v)))
            .collect()
    }
}

impl GroupEvaluator {
    /// The evaluator DataComp runs for a task key, if any.
    pub fn for_task(key: &str) -> Option<Self> {
        Some(match key {
            "wilds/iwildcam" => Self::IWildCam,
            "wilds/camelyon17" => Self::Camelyon17,
            "wilds/fmow" => Self::FMoW,
            "fairness/dollar_street" => Self::DollarStreet,
            "fairness/geode" => Self::GeoDE,
            _ => return None,
        })
    }

    /// The evaluator's `_metadata_fields`: what each position of a sample's `npy` row means.
    pub fn metadata_fields(self) -> &'static [&'static str] {
        match self {
            Self::IWildCam => &[
                "location", "sequence", "year", "month", "day", "hour", "minute", "second", "y",
            ],
            Self::Camelyon17 => &["hospital", "slide", "y"],
            Self::FMoW => &["region", "year", "y"],
            Self::DollarStreet => &["income_ds", "income_meta", "region"],
            Self::GeoDE => &["region", "country"],
        }
    }

    /// The fields the evaluator builds groupers on (all of them are read, even iWildCam's
    /// unused `location` grouper, whose constructor checks the values).
    pub fn grouped_fields(self) -> &'static [&'static str] {
        match self {
            Self::IWildCam => &["location"],
            Self::Camelyon17 => &["slide"],
            Self::FMoW => &["year", "region"],
            Self::DollarStreet => &["income_ds"],
            Self::GeoDE => &["region"],
        }
    }

    /// The evaluator's fields for `preds` (argmax and target ranks of every sample) and each
    /// sample's metadata row (`None`: the sample had no `npy` member, an error).
    pub fn evaluate(
        self,
        preds: &Predictions,
        metadata: &[Option<Vec<i64>>],
    ) -> Result<GroupMetrics, MetricsError> {
        if metadata.len() != preds.len() {
            return Err(MetricsError::Shape(format!(
                "{} metadata rows for {} predictions",
                metadata.len(),
                preds.len()
            )));
        }
        let rows = self.check_rows(metadata)?;
        let groupers = self
            .grouped_fields()
            .iter()
            .map(|f| Grouper::new(self.metadata_fields(), &[f], &rows))
            .collect::<Result<Vec<_>, _>>()?;
        let hits: Vec<bool> = match self {
            Self::DollarStreet => {
                if preds.num_classes < 5 {
                    return Err(MetricsError::Shape(format!(
                        "Dollar Street's top-5 accuracy needs at least 5 classes, the set has {}",
                        preds.num_classes
                    )));
                }
                preds.target_rank.iter().map(|&r| r < 5).collect()
            }
            _ => preds
                .top1
                .iter()
                .zip(&preds.targets)
                .map(|(p, t)| p == t)
                .collect(),
        };
        let mut out = Vec::new();
        match self {
            Self::IWildCam => {
                out.push(("acc_avg".into(), f64::from(mean_hits(&hits))));
                out.push((
                    "recall-macro_all".into(),
                    macro_recall(&preds.targets, &preds.top1),
                ));
                out.push(("F1-macro_all".into(), macro_f1(&preds.targets, &preds.top1)));
            }
            Self::Camelyon17 | Self::GeoDE => {
                standard_group_eval("acc", &hits, &groupers[0], &rows, &mut out);
            }
            Self::DollarStreet => {
                standard_group_eval("acc_top5", &hits, &groupers[0], &rows, &mut out);
            }
            Self::FMoW => {
                standard_group_eval("acc", &hits, &groupers[0], &rows, &mut out);
                let (_, worst_year) = out.pop().expect("standard_group_eval wrote acc_wg");
                out.push(("acc_worst_year".into(), worst_year));
                let region = &groupers[1];
                let by_region = group_wise(&hits, &region.groups(&rows), region.n_groups);
                by_region.push_fields("acc", region, &mut out);
                out.push(("acc_worst_region".into(), f64::from(by_region.worst)));
            }
        }
        Ok(GroupMetrics(out))
    }

    /// Every sample's row, checked: present, and long enough for the grouped fields.
    fn check_rows(self, metadata: &[Option<Vec<i64>>]) -> Result<Vec<&[i64]>, MetricsError> {
        let fields = self.metadata_fields();
        let needed = self
            .grouped_fields()
            .iter()
            .filter_map(|f| fields.iter().position(|x| x == f))
            .max()
            .map_or(0, |i| i + 1);
        metadata
            .iter()
            .enumerate()
            .map(|(i, m)| match m {
                None => Err(MetricsError::Metadata {
                    index: i,
                    reason: format!(
                        "no `npy` metadata member (the evaluator reads {})",
                        fields.join(", ")
                    ),
                }),
                Some(row) if row.len() < needed => Err(MetricsError::Metadata {
                    index: i,
                    reason: format!(
                        "`npy` metadata has {} values, the evaluator reads {needed} ({})",
                        row.len(),
                        fields[..needed].join(", ")
                    ),
                }),
                Some(row) => Ok(row.as_slice()),
            })
            .collect()
    }
}

/// WILDS' `CombinatorialGrouper` over some metadata fields: a group id is the mixed-radix
/// number of the fields' values (the first field varies fastest), each field's radix its largest
/// value + 1 over the whole set; groups are named from the last field to the first
/// (`race:3_gender:1`), one field as `field:N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grouper {
    /// The fields grouped by, with their positions in each metadata row and their radices
    /// (`1 + max` over the set; 0 for an empty set).
    pub fields: Vec<(String, usize, usize)>,
    /// The number of groups (the product of the radices).
    pub n_groups: usize,
}

impl Grouper {
    /// The grouper of `by` (each one of `fields`, the metadata row's field names) over the rows
    /// of a whole set; a negative value is an error naming its sample.
    pub fn new(fields: &[&str], by: &[&str], rows: &[&[i64]]) -> Result<Self, MetricsError> {
        let mut grouped = Vec::with_capacity(by.len());
        for &field in by {
            let column = fields
                .iter()
                .position(|f| *f == field)
                .ok_or_else(|| MetricsError::Shape(format!("no metadata field {field}")))?;
            let mut max = -1i64;
            for (i, row) in rows.iter().enumerate() {
                let v = row[column];
                if v < 0 {
                    return Err(MetricsError::Metadata {
                        index: i,
                        reason: format!("metadata {field} = {v}: group values cannot be negative"),
                    });
                }
                max = max.max(v);
            }
            let radix = usize::try_from(max + 1).expect("max >= -1");
            grouped.push((field.to_string(), column, radix));
        }
        let n_groups = grouped.iter().map(|f| f.2).product();
        Ok(Self {
            fields: grouped,
            n_groups,
        })
    }

    /// Each row's group.
    pub fn groups(&self, rows: &[&[i64]]) -> Vec<usize> {
        rows.iter()
            .map(|r| {
                let (mut g, mut factor) = (0, 1);
                for &(_, column, radix) in &self.fields {
                    g += r[column] as usize * factor;
                    factor *= radix;
                }
                g
            })
            .collect()
    }

    /// `group_field_str`: `{field}:{value}` of each field, from the last field to the first,
    /// joined by `_`.
    pub fn group_name(&self, group: usize) -> String {
        let mut rest = group;
        let mut parts: Vec<String> = self
            .fields
            .iter()
            .map(|(name, _, radix)| {
                let v = rest % radix.max(&1);
                rest /= radix.max(&1);
                format!("{name}:{v}")
            })
            .collect();
        parts.reverse();
        parts.join("_")
    }
}

/// `Metric.compute_group_wise` of an element-wise metric under DataComp's `avg_over_groups`.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupWise {
    /// Each group's mean (`f32` sum / `f32` count; NaN for an empty group).
    pub metrics: Vec<f32>,
    /// Each group's size.
    pub counts: Vec<u64>,
    /// The minimum over the non-empty groups (`0.0` when all are empty).
    pub worst: f32,
}

impl GroupWise {
    /// `{name}_{group}` and `count_{group}` of every group, in group order.
    fn push_fields(&self, name: &str, grouper: &Grouper, out: &mut Vec<(String, f64)>) {
        for (g, (&m, &c)) in self.metrics.iter().zip(&self.counts).enumerate() {
            let group = grouper.group_name(g);
            out.push((format!("{name}_{group}"), f64::from(m)));
            out.push((format!("count_{group}"), c as f64));
        }
    }
}

/// Group-wise means of `hits` (`groups[i] < n_groups`).
pub fn group_wise(hits: &[bool], groups: &[usize], n_groups: usize) -> GroupWise {
    let mut sums = vec![0u64; n_groups];
    let mut counts = vec![0u64; n_groups];
    for (&h, &g) in hits.iter().zip(groups) {
        counts[g] += 1;
        sums[g] += u64::from(h);
    }
    // Integers below 2^24 are exact in f32, so this is the scatter-add's sum in any order.
    let metrics: Vec<f32> = sums
        .iter()
        .zip(&counts)
        .map(|(&s, &c)| s as f32 / c as f32)
        .collect();
    let worst = metrics
        .iter()
        .zip(&counts)
        .filter(|(_, &c)| c > 0)
        .map(|(&m, _)| m)
        .reduce(f32::min)
        .unwrap_or(0.0);
    GroupWise {
        metrics,
        counts,
        worst,
    }
}

/// `ElementwiseMetric.compute`: the `f32` mean of the hits (`0.0` for none).
pub fn mean_hits(hits: &[bool]) -> f32 {
    if hits.is_empty() {
        return 0.0;
    }
    hits.iter().filter(|&&h| h).count() as f32 / hits.len() as f32
}

/// `standard_group_eval`: `{name}_avg`, per group `{name}_{field}:{g}` and `count_{field}:{g}`,
/// then `{name}_wg`.
pub fn standard_group_eval(
    name: &str,
    hits: &[bool],
    grouper: &Grouper,
    rows: &[&[i64]],
    out: &mut Vec<(String, f64)>,
) {
    out.push((format!("{name}_avg"), f64::from(mean_hits(hits))));
    let gw = group_wise(hits, &grouper.groups(rows), grouper.n_groups);
    gw.push_fields(name, grouper, out);
    out.push((format!("{name}_wg"), f64::from(gw.worst)));
}

/// Per label of `unique(y_true)` (ascending): true positives, predicted and true counts.
fn label_counts(y_true: &[usize], y_pred: &[usize]) -> Vec<(u64, u64, u64)> {
    let n = y_true.iter().chain(y_pred).max().map_or(0, |m| m + 1);
    let (mut tp, mut pred, mut truth) = (vec![0u64; n], vec![0u64; n], vec![0u64; n]);
    for (&t, &p) in y_true.iter().zip(y_pred) {
        truth[t] += 1;
        pred[p] += 1;
        tp[t] += u64::from(t == p);
    }
    (0..n)
        .filter(|&l| truth[l] > 0)
        .map(|l| (tp[l], pred[l], truth[l]))
        .collect()
}

/// scikit-learn's `_prf_divide`: `0.0` where the denominator is zero.
fn prf_divide(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// `recall_score(y_true, y_pred, average="macro", labels=unique(y_true))` (`0.0` for no
/// samples, as WILDS' `Metric.compute`).
pub fn macro_recall(y_true: &[usize], y_pred: &[usize]) -> f64 {
    let recalls: Vec<f64> = label_counts(y_true, y_pred)
        .into_iter()
        .map(|(tp, _, t)| prf_divide(tp, t))
        .collect();
    numpy_mean(&recalls).unwrap_or(0.0)
}

/// `f1_score(y_true, y_pred, average="macro", labels=unique(y_true))` as scikit-learn 1.1.3
/// computes it: `2·p·r / (p + r)` per label (0 where `p + r = 0`), numpy's mean over labels.
pub fn macro_f1(y_true: &[usize], y_pred: &[usize]) -> f64 {
    let f1: Vec<f64> = label_counts(y_true, y_pred)
        .into_iter()
        .map(|(tp, p, t)| {
            let (precision, recall) = (prf_divide(tp, p), prf_divide(tp, t));
            let denom = precision + recall;
            if denom == 0.0 {
                0.0
            } else {
                2.0 * precision * recall / denom
            }
        })
        .collect();
    numpy_mean(&f1).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_sized_by_the_maximum_and_empty_ones_are_nan() {
        let rows: Vec<&[i64]> = vec![&[0, 3], &[0, 1], &[0, 3]];
        let g = Grouper::new(&["a", "b"], &["b"], &rows).unwrap();
        assert_eq!((g.fields[0].1, g.n_groups), (1, 4));
        assert_eq!(g.group_name(2), "b:2");
        let gw = group_wise(&[true, false, false], &g.groups(&rows), g.n_groups);
        assert!(gw.metrics[0].is_nan() && gw.metrics[2].is_nan());
        assert_eq!(gw.metrics[1], 0.0);
        assert_eq!(gw.metrics[3], 0.5);
        assert_eq!(gw.counts, vec![0, 1, 0, 2]);
        assert_eq!(gw.worst, 0.0);
        assert_eq!(group_wise(&[], &[], 0).worst, 0.0);
        // f32 division, as torch's float32 scatter-add / counts.
        let third = group_wise(&[true, false, false], &[0, 0, 0], 1);
        assert_eq!(f64::from(third.metrics[0]), 0.3333333432674408);
    }

    #[test]
    fn negative_group_values_and_short_rows_name_the_sample() {
        let rows: Vec<&[i64]> = vec![&[0], &[-2]];
        let err = Grouper::new(&["region"], &["region"], &rows).unwrap_err();
        assert!(
            matches!(err, MetricsError::Metadata { index: 1, .. }),
            "{err}"
        );
        let preds = Predictions {
            num_classes: 2,
            targets: vec![0, 1],
            top1: vec![0, 0],
            target_rank: vec![0, 1],
        };
        let meta = vec![Some(vec![0, 1, 0]), Some(vec![0])];
        let err = GroupEvaluator::Camelyon17
            .evaluate(&preds, &meta)
            .unwrap_err();
        assert!(
            matches!(err, MetricsError::Metadata { index: 1, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("hospital, slide"), "{err}");
        let err = GroupEvaluator::GeoDE
            .evaluate(&preds, &[Some(vec![0, 0]), None])
            .unwrap_err();
        assert!(err.to_string().contains("no `npy`"), "{err}");
        let err = GroupEvaluator::DollarStreet
            .evaluate(&preds, &[Some(vec![0]), Some(vec![1])])
            .unwrap_err();
        assert!(err.to_string().contains("at least 5 classes"), "{err}");
    }

    #[test]
    fn macro_scores_follow_sklearn_over_the_true_labels() {
        // label 0: tp 1, pred 2, true 2; label 1: tp 0, pred 0, true 1; 2 only predicted.
        let t = [0, 0, 1, 3];
        let p = [0, 2, 0, 3];
        // recall: 1/2, 0, 1 (label 3) -> 0.5
        assert_eq!(macro_recall(&t, &p), 0.5);
        // f1: label 0 p=1/2 r=1/2 -> 1/2; label 1 -> 0; label 3 -> 1
        assert_eq!(macro_f1(&t, &p), 0.5);
        assert_eq!(macro_f1(&[], &[]), 0.0);
    }

    #[test]
    fn fmow_counts_the_other_region() {
        // region 5 ("Other") holds the only miss.
        let preds = Predictions {
            num_classes: 3,
            targets: vec![0, 1, 2],
            top1: vec![0, 1, 0],
            target_rank: vec![0, 0, 1],
        };
        let meta = vec![
            Some(vec![0, 2, 0]),
            Some(vec![1, 2, 1]),
            Some(vec![5, 2, 2]),
        ];
        let m = GroupEvaluator::FMoW.evaluate(&preds, &meta).unwrap();
        assert_eq!(m.get("acc_worst_region"), Some(0.0));
        assert_eq!(m.get("count_region:5"), Some(1.0));
        assert!(m.get("acc_region:3").unwrap().is_nan());
        assert_eq!(m.get("acc_worst_year"), Some(f64::from(2f32 / 3f32)));
        let names: Vec<&str> = m.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names[..4],
            ["acc_avg", "acc_year:0", "count_year:0", "acc_year:1"]
        );
        assert_eq!(names.last(), Some(&"acc_worst_region"));
    }
}
