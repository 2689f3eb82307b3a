//! Zero-shot classification: CLIP_benchmark 1.4.0 `zero_shot_classifier`, `run_classification`,
//! `accuracy`, and DataComp's `wds_eval.evaluate_webdataset` metrics.

use crate::error::MetricsError;
use crate::matrix::{self, for_each_score_row, Matrix, DEFAULT_BLOCK_ELEMS};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::borrow::Borrow;

/// The logit scale CLIP_benchmark applies to normalised image features (`100. * x @ W`).
pub const LOGIT_SCALE: f32 = 100.0;

/// Zero-shot class weights: one unit-norm row per class (`num_classes × dim`).
///
/// CLIP_benchmark stores the transpose (`dim × num_classes`); rows are handier here.
#[derive(Debug, Clone, PartialEq)]
pub struct ZeroShotClassifier {
    weights: Matrix,
}

impl ZeroShotClassifier {
    /// Builds the classifier from the text embeddings of each class's prompts (one matrix per
    /// class, one row per template): every embedding is L2-normalised, the class mean is taken
    /// and renormalised — `F.normalize(e, dim=-1).mean(0)`, then `/= norm()`.
    pub fn from_template_embeddings<M: Borrow<Matrix>>(
        per_class: &[M],
    ) -> Result<Self, MetricsError> {
        let Some(first) = per_class.first() else {
            return Err(MetricsError::Empty("no classes".into()));
        };
        let dim = first.borrow().cols();
        let mut weights = Matrix::zeros(per_class.len(), dim);
        for (c, emb) in per_class.iter().enumerate() {
            let emb = emb.borrow();
            if emb.cols() != dim {
                return Err(MetricsError::Shape(format!(
                    "class {c}: text embeddings have dimension {}, class 0 has {dim}",
                    emb.cols()
                )));
            }
            if emb.rows() == 0 {
                return Err(MetricsError::Empty(format!("class {c} has no templates")));
            }
            emb.check_finite(&format!("text embeddings of class {c}"))?;
            let mut acc = vec![0f64; dim];
            let mut tmp = vec![0f32; dim];
            for t in 0..emb.rows() {
                tmp.copy_from_slice(emb.row(t));
                matrix::normalize_in_place(&mut tmp);
                acc.iter_mut()
                    .zip(&tmp)
                    .for_each(|(a, &v)| *a += f64::from(v));
            }
            let n = emb.rows() as f64;
            let row = weights.row_mut(c);
            row.iter_mut()
                .zip(&acc)
                .for_each(|(w, &a)| *w = (a / n) as f32);
            let norm = matrix::l2_norm(row);
            if norm == 0.0 {
                return Err(MetricsError::Shape(format!(
                    "class {c}: mean text embedding is zero, cannot normalise"
                )));
            }
            row.iter_mut().for_each(|w| *w /= norm);
        }
        Ok(Self { weights })
    }

    /// Builds the classifier from class-major text embeddings: rows
    /// `[c * templates_per_class, (c + 1) * templates_per_class)` belong to class `c`.
    pub fn from_flat(
        text_embeddings: &Matrix,
        templates_per_class: usize,
    ) -> Result<Self, MetricsError> {
        if templates_per_class == 0 || text_embeddings.rows() % templates_per_class != 0 {
            return Err(MetricsError::Shape(format!(
                "{} text embeddings are not a multiple of {templates_per_class} templates",
                text_embeddings.rows()
            )));
        }
        let d = text_embeddings.cols();
        let per_class = text_embeddings
            .data()
            .chunks(templates_per_class * d.max(1))
            .map(|chunk| Matrix::new(templates_per_class, d, chunk.to_vec()))
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_template_embeddings(&per_class)
    }

    /// Wraps precomputed class weights (one row per class), used as they are.
    pub fn from_weights(weights: Matrix) -> Self {
        Self { weights }
    }

    /// The class weights, `num_classes × dim`.
    pub fn weights(&self) -> &Matrix {
        &self.weights
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.weights.rows()
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.weights.cols()
    }

    /// Scaled, normalised image features `100 · F.normalize(x)`, the left operand of the logits.
    fn prepare_images(&self, image_features: &Matrix) -> Result<Matrix, MetricsError> {
        if image_features.cols() != self.dim() {
            return Err(MetricsError::Shape(format!(
                "image features have dimension {}, classifier has {}",
                image_features.cols(),
                self.dim()
            )));
        }
        image_features.check_finite("image features")?;
        let mut x = image_features.clone();
        x.l2_normalize_rows();
        x.scale(LOGIT_SCALE);
        Ok(x)
    }

    /// Full logits `(100 · F.normalize(x)) · Wᵀ` (`n × num_classes`). Materialises the whole
    /// matrix: use [`Self::predict`] for large sets.
    pub fn logits(&self, image_features: &Matrix) -> Result<Matrix, MetricsError> {
        let x = self.prepare_images(image_features)?;
        let rows = for_each_score_row(&x, &self.weights, DEFAULT_BLOCK_ELEMS, |_, r| r.to_vec())?;
        Matrix::new(
            x.rows(),
            self.num_classes(),
            rows.into_iter().flatten().collect(),
        )
    }

    /// Predictions for raw (unnormalised) image features and their targets, computed in
    /// blocks without keeping the logits.
    pub fn predict(
        &self,
        image_features: &Matrix,
        targets: &[usize],
    ) -> Result<Predictions, MetricsError> {
        check_targets(image_features.rows(), targets, self.num_classes())?;
        let x = self.prepare_images(image_features)?;
        let ranked = for_each_score_row(&x, &self.weights, DEFAULT_BLOCK_ELEMS, |i, row| {
            top1_and_rank(row, targets[i])
        })?;
        Ok(Predictions::from_parts(targets, ranked, self.num_classes()))
    }

    /// The argmax class of each image (first maximal index, `torch.argmax`), computed in
    /// blocks without keeping the logits; for sets without class targets (FairFace's labels).
    pub fn argmax(&self, image_features: &Matrix) -> Result<Vec<usize>, MetricsError> {
        let x = self.prepare_images(image_features)?;
        for_each_score_row(&x, &self.weights, DEFAULT_BLOCK_ELEMS, |_, row| {
            top1_and_rank(row, 0).0
        })
    }

    /// Convenience: [`Self::predict`] followed by [`Predictions::metrics`].
    pub fn evaluate(
        &self,
        image_features: &Matrix,
        targets: &[usize],
    ) -> Result<ClassificationMetrics, MetricsError> {
        self.predict(image_features, targets)?.metrics()
    }
}

/// Checks that there is one target per row and every target is a valid class id.
pub(crate) fn check_targets(
    rows: usize,
    targets: &[usize],
    num_classes: usize,
) -> Result<(), MetricsError> {
    if rows != targets.len() {
        return Err(MetricsError::Shape(format!(
            "{rows} rows but {} targets",
            targets.len()
        )));
    }
    if let Some((i, &t)) = targets.iter().enumerate().find(|(_, &t)| t >= num_classes) {
        return Err(MetricsError::IdOutOfRange {
            what: "sample",
            index: i,
            id: t,
            limit: num_classes,
        });
    }
    Ok(())
}

/// The argmax of `row` (first maximal index) and the rank of `target` under the order
/// (score descending, index ascending): `target` is in the top k iff `rank < k`.
pub fn top1_and_rank(row: &[f32], target: usize) -> (usize, usize) {
    let mut best = 0usize;
    let mut best_v = f32::NEG_INFINITY;
    for (j, &v) in row.iter().enumerate() {
        if v > best_v || j == 0 {
            best = j;
            best_v = v;
        }
    }
    (best, rank_of(row, target))
}

/// Number of entries ranked before `pos` under (score descending, index ascending).
pub fn rank_of(row: &[f32], pos: usize) -> usize {
    let v = row[pos];
    let before = row[..pos].iter().filter(|&&x| x >= v).count();
    let after = row[pos + 1..].iter().filter(|&&x| x > v).count();
    before + after
}

/// Per-sample outcome of a zero-shot classification run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Predictions {
    /// Number of classes of the classifier.
    pub num_classes: usize,
    /// Ground-truth class per sample.
    pub targets: Vec<usize>,
    /// Argmax class per sample (lowest index among ties).
    pub top1: Vec<usize>,
    /// Rank of the target class per sample (0 = predicted).
    pub target_rank: Vec<usize>,
}

impl Predictions {
    fn from_parts(targets: &[usize], ranked: Vec<(usize, usize)>, num_classes: usize) -> Self {
        let (top1, target_rank) = ranked.into_iter().unzip();
        Self {
            num_classes,
            targets: targets.to_vec(),
            top1,
            target_rank,
        }
    }

    /// Predictions from a full logit matrix (`n × num_classes`).
    pub fn from_logits(logits: &Matrix, targets: &[usize]) -> Result<Self, MetricsError> {
        check_targets(logits.rows(), targets, logits.cols())?;
        logits.check_finite("logits")?;
        let ranked = (0..logits.rows())
            .map(|i| top1_and_rank(logits.row(i), targets[i]))
            .collect();
        Ok(Self::from_parts(targets, ranked, logits.cols()))
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Fraction of samples whose target is among the top `k` classes.
    pub fn accuracy_at(&self, k: usize) -> f64 {
        if self.is_empty() {
            return f64::NAN;
        }
        let hits = self.target_rank.iter().filter(|&&r| r < k).count();
        hits as f64 / self.len() as f64
    }

    /// DataComp's metrics: `acc1`, `acc5` (`None` with fewer than 5 classes) and
    /// `mean_per_class_recall`.
    pub fn metrics(&self) -> Result<ClassificationMetrics, MetricsError> {
        if self.is_empty() {
            return Err(MetricsError::Empty("no samples to classify".into()));
        }
        Ok(ClassificationMetrics {
            acc1: self.accuracy_at(1),
            acc5: (self.num_classes >= 5).then(|| self.accuracy_at(5)),
            mean_per_class_recall: balanced_accuracy(&self.targets, &self.top1),
            num_samples: self.len(),
        })
    }
}

/// `sklearn.metrics.balanced_accuracy_score(y_true, y_pred)` (not adjusted, no weights): the
/// mean over the classes present in `y_true` of the fraction of their samples predicted
/// correctly. Classes that occur only in `y_pred` have an undefined recall (0/0); scikit-learn
/// warns and drops them, and so do we. The mean is numpy's ([`numpy_mean`]). Returns NaN for
/// empty input.
pub fn balanced_accuracy(y_true: &[usize], y_pred: &[usize]) -> f64 {
    assert_eq!(y_true.len(), y_pred.len(), "y_true and y_pred lengths");
    let n_labels = y_true.iter().copied().max().map_or(0, |m| m + 1);
    let mut support = vec![0u64; n_labels];
    let mut correct = vec![0u64; n_labels];
    for (&t, &p) in y_true.iter().zip(y_pred) {
        support[t] += 1;
        if t == p {
            correct[t] += 1;
        }
    }
    let recalls: Vec<f64> = support
        .iter()
        .zip(&correct)
        .filter(|(&s, _)| s > 0)
        .map(|(&s, &c)| c as f64 / s as f64)
        .collect();
    numpy_mean(&recalls).unwrap_or(f64::NAN)
}

/// numpy's float64 sum (`np.add.reduce` over a contiguous array): below 8 values one running
/// sum; up to 128, eight running sums over the whole blocks of 8, combined pairwise, then the
/// rest added one by one; above, the two halves (the first a multiple of 8 long) recursively.
pub fn numpy_sum(values: &[f64]) -> f64 {
    let n = values.len();
    if n < 8 {
        return values.iter().fold(0.0, |s, v| s + v);
    }
    if n <= 128 {
        let mut r = [0.0; 8];
        r.copy_from_slice(&values[..8]);
        let whole = n - n % 8;
        for block in values[8..whole].chunks_exact(8) {
            for (acc, v) in r.iter_mut().zip(block) {
                *acc += v;
            }
        }
        let head = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        return values[whole..].iter().fold(head, |s, v| s + v);
    }
    let half = n / 2 - (n / 2) % 8;
    numpy_sum(&values[..half]) + numpy_sum(&values[half..])
}

/// `np.mean` of float64 values, bit for bit: numpy's pairwise sum (from its identity, 0.0),
/// divided by the count; `None` for no value (numpy: `nan` and a warning).
pub fn numpy_mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| (0.0 + numpy_sum(values)) / values.len() as f64)
}

/// DataComp's classification metrics for one task.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassificationMetrics {
    /// Top-1 accuracy.
    pub acc1: f64,
    /// Top-5 accuracy; `None` when the task has fewer than 5 classes (as DataComp).
    pub acc5: Option<f64>,
    /// Mean per-class recall (balanced accuracy).
    pub mean_per_class_recall: f64,
    /// Number of evaluated samples (not written to DataComp records).
    #[serde(skip)]
    pub num_samples: usize,
}

impl ClassificationMetrics {
    /// The `metrics` object of a DataComp `eval_results.jsonl` record (without `main_metric`).
    pub fn to_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("acc1".into(), Value::from(self.acc1));
        m.insert("acc5".into(), self.acc5.map_or(Value::Null, Value::from));
        m.insert(
            "mean_per_class_recall".into(),
            Value::from(self.mean_per_class_recall),
        );
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_and_top1_break_ties_by_lower_index() {
        let row = [0.5, 0.9, 0.9, 0.1, 0.9];
        assert_eq!(top1_and_rank(&row, 1), (1, 0));
        assert_eq!(top1_and_rank(&row, 2), (1, 1));
        assert_eq!(top1_and_rank(&row, 4), (1, 2));
        assert_eq!(top1_and_rank(&row, 0), (1, 3));
        assert_eq!(top1_and_rank(&row, 3), (1, 4));
    }

    #[test]
    fn balanced_accuracy_hand_computed() {
        // class 0: 2/3 right, class 1: 1/1, class 2 only predicted (dropped like sklearn).
        let t = [0, 0, 0, 1];
        let p = [0, 0, 2, 1];
        assert!((balanced_accuracy(&t, &p) - (2.0 / 3.0 + 1.0) / 2.0).abs() < 1e-15);
        // Class 3 never predicted but present: recall 0 counts.
        let t = [0, 3];
        let p = [0, 0];
        assert_eq!(balanced_accuracy(&t, &p), 0.5);
    }

    #[test]
    fn hand_computed_logits_metrics() {
        // 4 samples, 5 classes.
        let logits = Matrix::new(
            4,
            5,
            vec![
                5., 4., 3., 2., 1., // target 0 -> rank 0
                1., 2., 3., 4., 5., // target 0 -> rank 4
                0., 9., 1., 1., 1., // target 2 -> rank 1 (tie with 3,4 broken by index)
                0., 0., 0., 0., 0., // target 4 -> rank 4
            ],
        )
        .unwrap();
        let p = Predictions::from_logits(&logits, &[0, 0, 2, 4]).unwrap();
        assert_eq!(p.target_rank, vec![0, 4, 1, 4]);
        assert_eq!(p.top1, vec![0, 4, 1, 0]);
        let m = p.metrics().unwrap();
        assert_eq!(m.acc1, 0.25);
        assert_eq!(m.acc5, Some(1.0));
        // class 0: 1/2, class 2: 0/1, class 4: 0/1
        assert!((m.mean_per_class_recall - 0.5 / 3.0).abs() < 1e-15);
        let four =
            Predictions::from_logits(&Matrix::new(1, 4, vec![1., 0., 0., 0.]).unwrap(), &[0])
                .unwrap();
        assert_eq!(four.metrics().unwrap().acc5, None);
        assert!(four.metrics().unwrap().to_json()["acc5"].is_null());
    }

    #[test]
    fn classifier_is_normalised_mean_of_normalised_templates() {
        // Class 0: templates (2,0) and (0,1) -> normalised (1,0),(0,1) -> mean (.5,.5) -> (1/√2,1/√2)
        let c0 = Matrix::new(2, 2, vec![2.0, 0.0, 0.0, 1.0]).unwrap();
        let c1 = Matrix::new(1, 2, vec![0.0, -3.0]).unwrap();
        let clf = ZeroShotClassifier::from_template_embeddings(&[c0, c1]).unwrap();
        let s = std::f32::consts::FRAC_1_SQRT_2;
        assert!((clf.weights().row(0)[0] - s).abs() < 1e-7);
        assert!((clf.weights().row(0)[1] - s).abs() < 1e-7);
        assert_eq!(clf.weights().row(1), &[0.0, -1.0]);
        let x = Matrix::new(2, 2, vec![10.0, 0.0, 0.0, -0.5]).unwrap();
        let logits = clf.logits(&x).unwrap();
        assert!((logits.row(0)[0] - 100.0 * s).abs() < 1e-4);
        assert_eq!(logits.row(1)[1], 100.0);
        let m = clf.evaluate(&x, &[0, 1]).unwrap();
        assert_eq!(m.acc1, 1.0);
        assert_eq!(m.acc5, None);
    }

    #[test]
    fn bad_targets_are_reported_with_their_sample() {
        let clf = ZeroShotClassifier::from_weights(Matrix::new(2, 1, vec![1.0, -1.0]).unwrap());
        let x = Matrix::new(3, 1, vec![1.0, 1.0, 1.0]).unwrap();
        let err = clf.predict(&x, &[0, 1, 7]).unwrap_err().to_string();
        assert!(err.contains("sample 2") && err.contains("id 7"), "{err}");
        assert!(clf.predict(&x, &[0, 1]).is_err());
    }
}
