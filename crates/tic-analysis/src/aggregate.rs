//! DataComp's aggregate scores, as its `aggregate_scores.py` computes them, with the number of
//! tasks that entered each mean.
//!
//! DataComp summarises a model by five numbers over the main metrics of its evaluation suite
//! (`tasklist.yml`, 40 tasks, of which FairFace and UTKFace have no main metric and record
//! `main_metric: null`): **ImageNet** (ImageNet 1k), **ImageNet dist. shifts** (6 tasks),
//! **VTAB** (13), **Retrieval** (3) and **Average** (all 38). The suite and its groups are
//! defined here once ([`DATACOMP_MAIN_TASKS`]); `tic-aggregate` prints them for one
//! `eval_results.jsonl`, and `tic-metrics` / `tic-report` for the last model of each run whose
//! static tasks are DataComp's suite.
//!
//! What `aggregate_scores.py` does, and what we do:
//!
//! * records are matched by their `dataset` **name**, not their key; records whose main metric
//!   is `null` (or `NaN`) are dropped first, then a name's last record wins (its `dropna` and
//!   `dict(zip(...))`);
//! * it asserts that exactly 38 records remain and fails otherwise; we name the tasks of the
//!   38 that have no record or only a `null` main metric ([`SuiteMetrics::missing`]) and
//!   compute nothing unless asked to average over what is there ([`SuiteMetrics::scores`]
//!   always says how many tasks entered each mean). Records of tasks outside the 38 (TiC's
//!   `tic/...` tasks, another list's tasks) make its assertion fail; we leave them out and
//!   list them ([`SuiteMetrics::other_tasks`]);
//! * each mean is numpy's `np.mean` of float64 values: pairwise summation (eight accumulators
//!   from eight values on), then one division ([`numpy_mean`]). The values are summed in
//!   `tasklist.yml` order; the original sums Average in file order (`evaluate.py` writes
//!   `tasklist.yml` order) and each group in the iteration order of a Python `set`, which
//!   varies with `PYTHONHASHSEED`, so the two can differ in the last bits, never in the three
//!   decimals printed ([`print_scores`]).

use anyhow::{Context, Result};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use tic_eval::results::{parse_results, EvalRecord};

/// One of DataComp's five aggregates, in the order `aggregate_scores.py` prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aggregate {
    /// ImageNet 1k's main metric alone.
    ImageNet,
    /// Mean over ImageNet's six distribution shifts.
    ImageNetShifts,
    /// Mean over the 13 VTAB tasks.
    Vtab,
    /// Mean over Flickr, MSCOCO and WinoGAViL.
    Retrieval,
    /// Mean over all 38 main metrics.
    Average,
}

impl Aggregate {
    /// The five, in printing order.
    pub const ALL: [Aggregate; 5] = [
        Aggregate::ImageNet,
        Aggregate::ImageNetShifts,
        Aggregate::Vtab,
        Aggregate::Retrieval,
        Aggregate::Average,
    ];

    /// The label `aggregate_scores.py` prints (`ImageNet dist. shifts`).
    pub fn label(self) -> &'static str {
        match self {
            Aggregate::ImageNet => "ImageNet",
            Aggregate::ImageNetShifts => "ImageNet dist. shifts",
            Aggregate::Vtab => "VTAB",
            Aggregate::Retrieval => "Retrieval",
            Aggregate::Average => "Average",
        }
    }

    /// Whether `task`'s main metric enters this aggregate (every task enters Average).
    pub fn includes(self, task: &DataCompTask) -> bool {
        self == Aggregate::Average || task.group == Some(self)
    }

    /// How many of DataComp's main-metric tasks this aggregate is a mean over.
    pub fn size(self) -> usize {
        DATACOMP_MAIN_TASKS
            .iter()
            .filter(|t| self.includes(t))
            .count()
    }
}

/// A task of DataComp's suite with a main metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataCompTask {
    /// Its key in `tasklist.yml` (`vtab/caltech101`).
    pub key: &'static str,
    /// Its `name`, which its records carry as `dataset` and by which they are matched.
    pub name: &'static str,
    /// The aggregate besides Average it enters, if any.
    pub group: Option<Aggregate>,
}

/// Task key of ImageNet-1k in DataComp's task list.
pub const IMAGENET_KEY: &str = "imagenet1k";

/// DataComp task keys of ImageNet's distribution shifts (the "ImageNet dist. shifts" group).
pub const IMAGENET_SHIFT_KEYS: [&str; 6] = [
    "imagenet_sketch",
    "imagenetv2",
    "imagenet-a",
    "imagenet-o",
    "imagenet-r",
    "objectnet",
];

const fn task(key: &'static str, name: &'static str, group: Option<Aggregate>) -> DataCompTask {
    DataCompTask { key, name, group }
}

const VTAB: Option<Aggregate> = Some(Aggregate::Vtab);
const SHIFT: Option<Aggregate> = Some(Aggregate::ImageNetShifts);
const RETRIEVAL: Option<Aggregate> = Some(Aggregate::Retrieval);

/// The 38 tasks of DataComp's `tasklist.yml` (at 7fdb5c6) with a main metric, in its order,
/// each with the group of `aggregate_scores.py` it enters.
pub const DATACOMP_MAIN_TASKS: [DataCompTask; 38] = [
    task("vtab/caltech101", "Caltech-101", VTAB),
    task("cifar10", "CIFAR-10", None),
    task("vtab/cifar100", "CIFAR-100", VTAB),
    task("vtab/clevr_count_all", "CLEVR Counts", VTAB),
    task("vtab/clevr_closest_object_distance", "CLEVR Distance", VTAB),
    task("country211", "Country211", None),
    task("vtab/dtd", "Describable Textures", VTAB),
    task("vtab/eurosat", "EuroSAT", VTAB),
    task("fgvc_aircraft", "FGVC Aircraft", None),
    task("food101", "Food-101", None),
    task("gtsrb", "GTSRB", None),
    task(IMAGENET_KEY, "ImageNet 1k", Some(Aggregate::ImageNet)),
    task(IMAGENET_SHIFT_KEYS[0], "ImageNet Sketch", SHIFT),
    task(IMAGENET_SHIFT_KEYS[1], "ImageNet v2", SHIFT),
    task(IMAGENET_SHIFT_KEYS[2], "ImageNet-A", SHIFT),
    task(IMAGENET_SHIFT_KEYS[3], "ImageNet-O", SHIFT),
    task(IMAGENET_SHIFT_KEYS[4], "ImageNet-R", SHIFT),
    task(
        "vtab/kitti_closest_vehicle_distance",
        "KITTI Vehicle Distance",
        VTAB,
    ),
    task("mnist", "MNIST", None),
    task(IMAGENET_SHIFT_KEYS[5], "ObjectNet", SHIFT),
    task("vtab/flowers", "Oxford Flowers-102", VTAB),
    task("vtab/pets", "Oxford-IIIT Pet", VTAB),
    task("voc2007", "Pascal VOC 2007", None),
    task("vtab/pcam", "PatchCamelyon", VTAB),
    task("renderedsst2", "Rendered SST2", None),
    task("vtab/resisc45", "RESISC45", VTAB),
    task("cars", "Stanford Cars", None),
    task("stl10", "STL-10", None),
    task("sun397", "SUN397", VTAB),
    task("vtab/svhn", "SVHN", VTAB),
    task(
        "retrieval/flickr_1k_test_image_text_retrieval",
        "Flickr",
        RETRIEVAL,
    ),
    task(
        "retrieval/mscoco_2014_5k_test_image_text_retrieval",
        "MSCOCO",
        RETRIEVAL,
    ),
    task("misc/winogavil", "WinoGAViL", RETRIEVAL),
    task("wilds/iwildcam", "iWildCam", None),
    task("wilds/camelyon17", "Camelyon17", None),
    task("wilds/fmow", "FMoW", None),
    task("fairness/dollar_street", "Dollar Street", None),
    task("fairness/geode", "GeoDE", None),
];

/// The two tasks of DataComp's suite without a main metric (`main_metric: null` in their
/// records), as `(key, name)`: they enter no aggregate.
pub const DATACOMP_UNSCORED_TASKS: [(&str, &str); 2] = [
    ("fairness/fairface", "FairFace"),
    ("fairness/utkface", "UTKFace"),
];

/// `np.mean` of float64 values, bit for bit (defined with the metrics that also need it).
pub use tic_eval::metrics::classification::numpy_mean;
#[cfg(test)]
use tic_eval::metrics::classification::numpy_sum;

/// What the results say of one of the 38 main-metric tasks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TaskMetric {
    /// Its main metric (the last non-null record of its name).
    Value(f64),
    /// Records of it exist, all with a `null` main metric.
    Null,
    /// No record of it.
    Absent,
}

/// One aggregate of some results: the mean and how many tasks entered it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AggregateScore {
    /// Which aggregate.
    pub aggregate: Aggregate,
    /// The mean over the tasks with a main metric (`None` when none has one).
    pub mean: Option<f64>,
    /// Tasks whose main metric entered the mean.
    pub tasks: usize,
    /// Tasks the aggregate is a mean over in DataComp ([`Aggregate::size`]).
    pub of: usize,
}

impl AggregateScore {
    /// Whether every task of the aggregate entered the mean.
    pub fn is_complete(&self) -> bool {
        self.tasks == self.of
    }
}

/// The main metrics of DataComp's 38 tasks found in some results.
#[derive(Debug, Clone, PartialEq)]
pub struct SuiteMetrics {
    /// One per task of [`DATACOMP_MAIN_TASKS`], in its order.
    pub tasks: Vec<TaskMetric>,
    /// Names of the tasks outside DataComp's suite that have a main metric, in order of
    /// first appearance: they enter no aggregate (`aggregate_scores.py` would count them and
    /// fail its assertion).
    pub other_tasks: Vec<String>,
}

impl SuiteMetrics {
    /// From `(name, main metric)` pairs in file order: records are matched by name, a `null`
    /// main metric is dropped, a name's last value wins.
    pub fn from_main_metrics<'a>(pairs: impl IntoIterator<Item = (&'a str, Option<f64>)>) -> Self {
        let index: HashMap<&str, usize> = DATACOMP_MAIN_TASKS
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name, i))
            .collect();
        let mut tasks = vec![TaskMetric::Absent; DATACOMP_MAIN_TASKS.len()];
        let mut other_tasks: Vec<String> = Vec::new();
        for (name, value) in pairs {
            match (index.get(name), value) {
                (Some(&i), Some(v)) => tasks[i] = TaskMetric::Value(v),
                (Some(&i), None) if tasks[i] == TaskMetric::Absent => tasks[i] = TaskMetric::Null,
                (None, Some(_))
                    if !DATACOMP_UNSCORED_TASKS.iter().any(|(_, n)| *n == name)
                        && !other_tasks.iter().any(|o| o == name) =>
                {
                    other_tasks.push(name.to_string());
                }
                _ => {}
            }
        }
        Self { tasks, other_tasks }
    }

    /// From the records of an `eval_results.jsonl` (their `dataset` and `main_metric`).
    pub fn from_records(records: &[EvalRecord]) -> Self {
        Self::from_main_metrics(
            records
                .iter()
                .map(|r| (r.dataset.as_str(), r.main_metric())),
        )
    }

    /// The tasks of the 38 without a main metric, each with what the results hold of it.
    pub fn missing(&self) -> Vec<(&'static DataCompTask, TaskMetric)> {
        DATACOMP_MAIN_TASKS
            .iter()
            .zip(&self.tasks)
            .filter(|(_, m)| !matches!(m, TaskMetric::Value(_)))
            .map(|(t, m)| (t, *m))
            .collect()
    }

    /// Whether all 38 main metrics are there.
    pub fn is_complete(&self) -> bool {
        self.missing().is_empty()
    }

    /// Whether the results hold DataComp's suite: a record of each of the 38 tasks, even one
    /// whose main metric is `null` (an evaluator that does not compute it).
    pub fn covers_suite(&self) -> bool {
        self.tasks.iter().all(|m| *m != TaskMetric::Absent)
    }

    /// The five aggregates over the main metrics present, each with its task count.
    pub fn scores(&self) -> Vec<AggregateScore> {
        Aggregate::ALL
            .iter()
            .map(|&aggregate| {
                let values: Vec<f64> = DATACOMP_MAIN_TASKS
                    .iter()
                    .zip(&self.tasks)
                    .filter(|(t, _)| aggregate.includes(t))
                    .filter_map(|(_, m)| match m {
                        TaskMetric::Value(v) => Some(*v),
                        _ => None,
                    })
                    .collect();
                AggregateScore {
                    aggregate,
                    mean: numpy_mean(&values),
                    tasks: values.len(),
                    of: aggregate.size(),
                }
            })
            .collect()
    }
}

/// Reads an `eval_results.jsonl` (errors name the file) into its [`SuiteMetrics`].
pub fn read_suite_metrics(path: &Path) -> Result<SuiteMetrics> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading results file {}", path.display()))?;
    Ok(SuiteMetrics::from_records(&parse_results(&text, path)?))
}

/// What `aggregate_scores.py` prints, one `{label}: {mean:.3f}` line per aggregate. A mean over
/// fewer tasks than DataComp's says so on its line, `VTAB: 0.512 (partial: 12 of 13 tasks)`
/// (`n/a` for a mean over none), so a script reading the original's lines cannot take it for
/// the full one.
pub fn print_scores(scores: &[AggregateScore]) -> String {
    let mut s = String::new();
    for sc in scores {
        let mean = sc
            .mean
            .map_or_else(|| "n/a".to_string(), |m| format!("{m:.3}"));
        let _ = write!(s, "{}: {mean}", sc.aggregate.label());
        if !sc.is_complete() {
            let _ = write!(s, " (partial: {} of {} tasks)", sc.tasks, sc.of);
        }
        s.push('\n');
    }
    s
}

/// How many tasks entered each mean, on one line:
/// `tasks averaged: ImageNet 1/1, ImageNet dist. shifts 6/6, VTAB 13/13, Retrieval 3/3, Average 38/38`.
pub fn task_counts(scores: &[AggregateScore]) -> String {
    let parts: Vec<String> = scores
        .iter()
        .map(|sc| format!("{} {}/{}", sc.aggregate.label(), sc.tasks, sc.of))
        .collect();
    format!("tasks averaged: {}", parts.join(", "))
}

/// The missing tasks named with their keys and why:
/// `WinoGAViL (misc/winogavil: main_metric null), GeoDE (fairness/geode: no record)`.
pub fn describe_missing(missing: &[(&'static DataCompTask, TaskMetric)]) -> String {
    let parts: Vec<String> = missing
        .iter()
        .map(|(t, m)| {
            let why = match m {
                TaskMetric::Null => "main_metric null",
                _ => "no record",
            };
            format!("{} ({}: {why})", t.name, t.key)
        })
        .collect();
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suite_has_datacomps_group_sizes_and_unique_names() {
        let sizes: Vec<usize> = Aggregate::ALL.iter().map(|a| a.size()).collect();
        assert_eq!(sizes, [1, 6, 13, 3, 38]);
        let mut names: Vec<&str> = DATACOMP_MAIN_TASKS.iter().map(|t| t.name).collect();
        names.extend(DATACOMP_UNSCORED_TASKS.iter().map(|(_, n)| *n));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 40);
        let shifts: Vec<&str> = DATACOMP_MAIN_TASKS
            .iter()
            .filter(|t| t.group == Some(Aggregate::ImageNetShifts))
            .map(|t| t.key)
            .collect();
        assert_eq!(shifts, IMAGENET_SHIFT_KEYS);
    }

    #[test]
    fn numpy_mean_sums_pairwise_as_numpy_does() {
        // 1e16 + 1 + … : a running sum loses every 1.0, numpy's eight accumulators keep some.
        let mut v = vec![1e16];
        v.extend(std::iter::repeat_n(1.0, 15));
        let sum = numpy_sum(&v);
        // r0 = 1e16 + 1 (= 1e16), r1..r7 = 2: ((1e16 + 2) + 4) + 8 = 1e16 + 14.
        assert_eq!(sum, 1e16 + 14.0);
        assert_eq!(v.iter().fold(0.0, |s, x| s + x), 1e16);
        assert_eq!(numpy_mean(&[]), None);
        assert_eq!(numpy_mean(&[0.25, 0.75]), Some(0.5));
        // Above 128 values: two halves.
        let v: Vec<f64> = (0..300).map(|i| i as f64 * 0.1).collect();
        let expect = numpy_sum(&v[..144]) + numpy_sum(&v[144..]);
        assert_eq!(numpy_sum(&v), expect);
    }

    #[test]
    fn records_match_by_name_nulls_drop_and_the_last_value_wins() {
        let m = SuiteMetrics::from_main_metrics([
            ("ImageNet 1k", Some(0.1)),
            ("ImageNet 1k", Some(0.2)),
            ("ImageNet 1k", None),
            ("WinoGAViL", None),
            ("FairFace", None),
            ("FairFace", Some(0.9)),
            ("tic/x", Some(0.5)),
            ("tic/x", Some(0.6)),
        ]);
        assert_eq!(m.tasks[11], TaskMetric::Value(0.2));
        assert_eq!(m.tasks[32], TaskMetric::Null);
        assert_eq!(m.other_tasks, ["tic/x"]);
        assert_eq!(m.missing().len(), 37);
        assert!(!m.covers_suite());
        let scores = m.scores();
        assert_eq!(scores[0].mean, Some(0.2));
        assert_eq!((scores[0].tasks, scores[0].of), (1, 1));
        assert_eq!((scores[3].mean, scores[3].tasks), (None, 0));
        assert_eq!(
            print_scores(&scores[3..5]),
            "Retrieval: n/a (partial: 0 of 3 tasks)\nAverage: 0.200 (partial: 1 of 38 tasks)\n"
        );
        let missing = m.missing();
        assert_eq!(
            describe_missing(&missing[28..30]),
            "SVHN (vtab/svhn: no record), Flickr (retrieval/flickr_1k_test_image_text_retrieval: no record)"
        );
    }
}
