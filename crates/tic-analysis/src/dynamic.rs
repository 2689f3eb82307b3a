//! The paper's dynamic evaluation over several runs (methods): T×T matrices per TiC task
//! family, in-distribution / backward / forward transfer, static tasks and compute.
//!
//! # Definitions (TiC-CLIP §1.5 of the team reference)
//!
//! Training steps `1..T` are the union of the train times of all runs, ordered in time
//! (a train time is a `YYYY`, `YYYYMM` or `A-B` label; `2014-2016` for TiC-DataComp's first
//! step). An evaluation time `e` (the split of a `tic/...` task) belongs to the first step
//! whose time ends at or after `e` ends: with steps 2016, 2017, …, 2022 the eval years
//! 2014, 2015 and 2016 all belong to step 2016, and month 201703 to step 2017. Eval times after
//! the last step are kept in the raw matrix only.
//!
//! `E[i][j]` is the metric (retrieval: `mean_recall@1`; DataCompNet: `acc1`) of the model
//! trained at step `i` on the eval sets of step `j`, averaged over the eval times of step `j`.
//!
//! * **ID** (in-distribution) `= mean_i E[i][i]`
//! * **Backward transfer** `= 2/(T(T−1)) Σ_{i>j} E[i][j]` (mean over the strictly lower triangle)
//! * **Forward transfer** `= 2/(T(T−1)) Σ_{i<j} E[i][j]` (mean over the strictly upper triangle)
//!
//! A run without a model at every step (an Oracle trained once) or with missing evaluations
//! gets these means over the cells it has; the summary then says how many cells were used and
//! `complete = false`.
//!
//! Static tasks (keys not starting with `tic/`) are reported for each run's **last** model:
//! ImageNet (`imagenet1k`), the mean over ImageNet and its distribution shifts (those present
//! of `imagenet_sketch`, `imagenetv2`, `imagenet-a`, `imagenet-o`, `imagenet-r`,
//! `objectnet`), and the mean main metric over all static tasks (a `null` main metric is not
//! averaged; [`StaticSummary::averaged_tasks`] counts those that are). When the static tasks
//! are DataComp's suite, [`StaticSummary::datacomp`] gives DataComp's five aggregates
//! ([`crate::aggregate`]).
//!
//! Compute: every model has a number of samples seen (its training budget); a run's
//! cumulative compute at step `i` is the sum over its models up to `i`, and MACs are samples ×
//! a per-sample MAC figure.

use crate::aggregate::SuiteMetrics;
use crate::runs;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use tic_eval::metrics::fairface::FAIRFACE_TASKS;
use tic_eval::results::{EvalRecord, ResultsFile, RESULTS_FILE_NAME};
use tic_splits::taskkey::{TaskKey, TicFamily, TicTask, TimeLabel, Timescale};

pub use crate::aggregate::{IMAGENET_KEY, IMAGENET_SHIFT_KEYS};

/// The evaluation results of one model (one train time of a run).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelResults {
    /// Train-time label as given (directory or manifest name).
    pub time: String,
    /// Parsed train time.
    pub label: TimeLabel,
    /// Its `eval_results.jsonl` records.
    pub records: Vec<EvalRecord>,
    /// Samples seen while training this model (its own step, not cumulative).
    pub samples_seen: Option<f64>,
    /// Where the records came from.
    pub source: PathBuf,
}

/// One method: its models, ordered by train time.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Method name (`sequential`, `cumulative-all`, `oracle`, …).
    pub name: String,
    /// Models in time order.
    pub models: Vec<ModelResults>,
}

impl Run {
    /// Loads `dir/{time}/eval_results.jsonl` for every subdirectory `{time}` that parses as a
    /// time label (others are skipped with a warning). `{time}/compute.json`
    /// (`{"samples_seen": N}`) sets that model's samples seen, else `samples_per_step`.
    pub fn from_dir(name: &str, dir: &Path, samples_per_step: Option<f64>) -> Result<Self> {
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("run {name:?}: reading directory {}", dir.display()))?;
        let mut models = Vec::new();
        for entry in entries {
            let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            let time = entry.file_name().to_string_lossy().into_owned();
            let Ok(label) = TimeLabel::parse(&time) else {
                tracing::warn!(
                    "run {name:?}: skipping {} (not a time label)",
                    path.display()
                );
                continue;
            };
            let results = path.join(RESULTS_FILE_NAME);
            if !results.is_file() {
                bail!("run {name:?}: {} is missing", results.display());
            }
            let samples_seen = runs::samples_seen(&path)?;
            models.push(ModelResults {
                time,
                label,
                records: ResultsFile::open(&results)?.records().to_vec(),
                samples_seen: samples_seen.or(samples_per_step),
                source: results,
            });
        }
        Self::new(name, models).with_context(|| format!("run directory {}", dir.display()))
    }

    /// A run from models in any order; fails on duplicate train times or no model.
    pub fn new(name: &str, mut models: Vec<ModelResults>) -> Result<Self> {
        if models.is_empty() {
            bail!("run {name:?} has no model (no {{time}}/{RESULTS_FILE_NAME})");
        }
        models.sort_by_key(|m| m.label);
        if let Some(w) = models.windows(2).find(|w| w[0].label == w[1].label) {
            bail!(
                "run {name:?}: train times {:?} and {:?} are the same time",
                w[0].time,
                w[1].time
            );
        }
        Ok(Self {
            name: name.to_string(),
            models,
        })
    }
}

/// A manifest listing runs explicitly (`tic-metrics --manifest`).
///
/// ```json
/// {"macs_per_sample": 2.9e10,
///  "runs": [
///    {"name": "sequential", "dir": "results/sequential", "samples_per_step": 18432000},
///    {"name": "oracle", "models": [
///       {"time": "2022", "results": "results/oracle/eval_results.jsonl", "samples_seen": 129024000}]}]}
/// ```
/// Relative paths are relative to the manifest's directory.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// MACs per training sample (forward + backward), for the compute axis.
    #[serde(default)]
    pub macs_per_sample: Option<f64>,
    /// The runs, in display order.
    pub runs: Vec<ManifestRun>,
}

/// One run of a [`Manifest`]: a directory (as `--runs`) and/or explicit models.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestRun {
    /// Method name.
    pub name: String,
    /// A run directory laid out as for `--runs`.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Samples seen per model, unless the model says otherwise.
    #[serde(default)]
    pub samples_per_step: Option<f64>,
    /// Explicit models.
    #[serde(default)]
    pub models: Vec<ManifestModel>,
}

/// One model of a [`ManifestRun`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestModel {
    /// Train time (`YYYY`, `YYYYMM` or `A-B`).
    pub time: String,
    /// Its `eval_results.jsonl` (or a directory containing one).
    pub results: PathBuf,
    /// Samples seen training this model.
    #[serde(default)]
    pub samples_seen: Option<f64>,
}

impl Manifest {
    /// Reads a manifest file.
    pub fn from_path(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading manifest {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing manifest {}", path.display()))
    }

    /// Loads every run; relative paths are resolved against `base`.
    pub fn load_runs(&self, base: &Path) -> Result<Vec<Run>> {
        let mut runs = Vec::new();
        for r in &self.runs {
            let mut models = Vec::new();
            if let Some(dir) = &r.dir {
                models.extend(Run::from_dir(&r.name, &base.join(dir), r.samples_per_step)?.models);
            }
            for m in &r.models {
                let label = TimeLabel::parse(&m.time)
                    .with_context(|| format!("run {:?}: model time {:?}", r.name, m.time))?;
                let mut path = base.join(&m.results);
                if path.is_dir() {
                    path = path.join(RESULTS_FILE_NAME);
                }
                if !path.is_file() {
                    bail!(
                        "run {:?}, time {}: {} is missing",
                        r.name,
                        m.time,
                        path.display()
                    );
                }
                models.push(ModelResults {
                    time: m.time.clone(),
                    label,
                    records: ResultsFile::open(&path)?.records().to_vec(),
                    samples_seen: m.samples_seen.or(r.samples_per_step),
                    source: path,
                });
            }
            runs.push(Run::new(&r.name, models)?);
        }
        Ok(runs)
    }
}

/// A TiC task family: source dataset × family × timescale.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FamilyKey {
    /// `datacomp`, `yfcc15m` or `redcaps`.
    pub dataset: String,
    /// Retrieval or DataCompNet.
    pub family: TicFamily,
    /// Yearly or monthly.
    pub timescale: Timescale,
}

impl FamilyKey {
    /// The family of a TiC task.
    pub fn of(task: &TicTask) -> Self {
        Self {
            dataset: task.dataset.clone(),
            family: task.family,
            timescale: task.timescale,
        }
    }

    /// The task key of this family's split `split` (`tic/datacomp/retrieval/yearly/2016`).
    pub fn task_key(&self, split: &str) -> String {
        TicTask {
            dataset: self.dataset.clone(),
            family: self.family,
            timescale: self.timescale,
            split: split.to_string(),
        }
        .to_string()
    }

    /// A file-name-safe id, e.g. `datacomp-retrieval-yearly`.
    pub fn id(&self) -> String {
        format!("{}-{}-{}", self.dataset, self.family, self.timescale)
    }
}

/// What `tic-metrics` computes; see the module docs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The training steps (union of all runs' train times), in order.
    pub steps: Vec<String>,
    /// MACs per sample used for the compute columns, if given.
    pub macs_per_sample: Option<f64>,
    /// The task families found, in order.
    pub families: Vec<FamilyKey>,
    /// One entry per run, in input order.
    pub runs: Vec<RunReport>,
}

/// Everything computed for one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    /// Method name.
    pub name: String,
    /// The run's own train times.
    pub train_times: Vec<String>,
    /// One matrix per family (same order as [`Report::families`]).
    pub matrices: Vec<FamilyMatrix>,
    /// Static tasks of the last model.
    pub static_tasks: StaticSummary,
    /// Compute and per-step summary numbers, one per model.
    pub per_step: Vec<StepPoint>,
}

/// The matrices of one run and family.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FamilyMatrix {
    /// The family.
    pub family: FamilyKey,
    /// The metric used (`mean_recall@1` / `acc1`).
    pub metric: String,
    /// Eval times (columns of `raw`), in order.
    pub eval_times: Vec<String>,
    /// `raw[i][e]`: model of the run's train time `i` on eval time `e`.
    pub raw: Vec<Vec<Option<f64>>>,
    /// `matrix[i][j]` over the common steps (rows of steps the run lacks are all `None`).
    pub matrix: Vec<Vec<Option<f64>>>,
    /// ID / backward / forward transfer.
    pub summary: TransferSummary,
}

/// The paper's summary numbers for one matrix.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TransferSummary {
    /// Mean of the diagonal.
    pub id: Option<f64>,
    /// Mean of the strictly lower triangle (eval time before train time).
    pub backward: Option<f64>,
    /// Mean of the strictly upper triangle (eval time after train time).
    pub forward: Option<f64>,
    /// Cells present out of `T·T`.
    pub cells: usize,
    /// Whether all `T·T` cells are present.
    pub complete: bool,
}

/// Static (non-TiC) tasks of a run's last model.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StaticSummary {
    /// Train time of the model reported.
    pub time: Option<String>,
    /// ImageNet-1k `acc1`.
    pub imagenet: Option<f64>,
    /// Mean main metric over ImageNet and its shifts present.
    pub imagenet_and_shifts: Option<f64>,
    /// Number of tasks averaged in `imagenet_and_shifts`.
    pub imagenet_and_shifts_tasks: usize,
    /// Mean main metric over every static task with one.
    pub average: Option<f64>,
    /// Per task: name → main metric.
    pub tasks: BTreeMap<String, Option<f64>>,
    /// The whole metrics of the model's FairFace / UTKFace records (task key → metrics, `NaN`
    /// read as `null`), which have no main metric: the report's fairness tables
    /// (`crate::fairness`). Absent from older `report.json` files.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fairness: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
}

impl StaticSummary {
    /// How many static tasks entered [`StaticSummary::average`]: those with a main metric
    /// (a `null` one is not averaged).
    pub fn averaged_tasks(&self) -> usize {
        self.tasks.values().flatten().count()
    }

    /// DataComp's aggregates of these tasks ([`crate::aggregate`]), when they are DataComp's
    /// suite: a record of each of its 38 main-metric tasks, even a `null` one.
    pub fn datacomp(&self) -> Option<SuiteMetrics> {
        let suite =
            SuiteMetrics::from_main_metrics(self.tasks.iter().map(|(n, v)| (n.as_str(), *v)));
        suite.covers_suite().then_some(suite)
    }
}

/// Compute and summary numbers of one model of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepPoint {
    /// Train time.
    pub time: String,
    /// Samples seen by this model's training.
    pub samples_seen: Option<f64>,
    /// Cumulative samples seen by the run up to this model.
    pub cumulative_samples: Option<f64>,
    /// `cumulative_samples × macs_per_sample`.
    pub cumulative_macs: Option<f64>,
    /// ImageNet `acc1` of this model.
    pub imagenet: Option<f64>,
    /// Mean over ImageNet and its shifts present.
    pub imagenet_and_shifts: Option<f64>,
    /// Per family (same order as [`Report::families`]): mean of `E[i][j]` for `j ≤ i`, the
    /// model's performance on everything seen so far.
    pub seen_so_far: Vec<Option<f64>>,
}

fn mean(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (s, n) = values
        .into_iter()
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| s / n as f64)
}

/// ID, backward and forward transfer of a square matrix with possibly missing cells.
pub fn transfer_summary(matrix: &[Vec<Option<f64>>]) -> TransferSummary {
    let t = matrix.len();
    let cells = |pred: &dyn Fn(usize, usize) -> bool| {
        mean(matrix.iter().enumerate().flat_map(|(i, row)| {
            row.iter()
                .enumerate()
                .filter(move |(j, _)| pred(i, *j))
                .filter_map(|(_, v)| *v)
        }))
    };
    let present = matrix.iter().flatten().filter(|v| v.is_some()).count();
    TransferSummary {
        id: cells(&|i, j| i == j),
        backward: cells(&|i, j| i > j),
        forward: cells(&|i, j| i < j),
        cells: present,
        complete: present == t * t,
    }
}

/// Index of the step an eval time belongs to: the first step ending at or after it.
fn step_of(steps: &[TimeLabel], eval: TimeLabel) -> Option<usize> {
    steps.iter().position(|s| s.end >= eval.end)
}

/// The last record of `key` in `records`.
fn record<'a>(records: &'a [EvalRecord], key: &str) -> Option<&'a EvalRecord> {
    records.iter().rev().find(|r| r.key == key)
}

fn static_summary(model: &ModelResults) -> StaticSummary {
    let mut tasks = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for r in model.records.iter().rev() {
        if matches!(TaskKey::parse(&r.key), Ok(TaskKey::Static(_))) && seen.insert(r.key.clone()) {
            tasks.insert(r.dataset.clone(), r.main_metric());
        }
    }
    let imagenet = record(&model.records, IMAGENET_KEY).and_then(|r| r.metric("acc1"));
    let shift_vals: Vec<f64> = std::iter::once(IMAGENET_KEY)
        .chain(IMAGENET_SHIFT_KEYS)
        .filter_map(|k| record(&model.records, k).and_then(EvalRecord::main_metric))
        .collect();
    StaticSummary {
        time: Some(model.time.clone()),
        imagenet,
        imagenet_and_shifts: mean(shift_vals.iter().copied()),
        imagenet_and_shifts_tasks: shift_vals.len(),
        average: mean(tasks.values().flatten().copied()),
        tasks,
        fairness: FAIRFACE_TASKS
            .iter()
            .filter_map(|&k| record(&model.records, k).map(|r| (k.to_string(), r.metrics.clone())))
            .collect(),
    }
}

/// The training steps, the union of the runs' train times in time order (each named as the
/// first run naming it), as labels and names; warns when two of them overlap.
fn common_steps(runs: &[Run]) -> (Vec<TimeLabel>, Vec<String>) {
    let mut step_labels: BTreeMap<TimeLabel, String> = BTreeMap::new();
    for run in runs {
        for m in &run.models {
            step_labels.entry(m.label).or_insert_with(|| m.time.clone());
        }
    }
    let labels: Vec<TimeLabel> = step_labels.keys().copied().collect();
    let steps: Vec<String> = step_labels.values().cloned().collect();
    if let Some(w) = labels
        .windows(2)
        .find(|w| w[1].start <= w[0].end && w[0].end != w[1].end)
    {
        tracing::warn!("train times overlap: {:?} and {:?}", w[0], w[1]);
    }
    (labels, steps)
}

/// Eval times (time → split as spelled) of one family.
type EvalTimes = BTreeMap<TimeLabel, String>;

/// The TiC task families of every record of every run, each with its eval times.
fn eval_families(runs: &[Run]) -> BTreeMap<FamilyKey, EvalTimes> {
    let mut families: BTreeMap<FamilyKey, EvalTimes> = BTreeMap::new();
    for run in runs {
        for m in &run.models {
            for r in &m.records {
                if let Ok(TaskKey::Tic(t)) = TaskKey::parse(&r.key) {
                    families
                        .entry(FamilyKey::of(&t))
                        .or_default()
                        .insert(t.time(), t.split.clone());
                }
            }
        }
    }
    families
}

/// The raw and T×T matrices of `run` for family `fk` (eval times `evals`, steps `labels`).
fn family_matrix(
    run: &Run,
    fk: &FamilyKey,
    evals: &EvalTimes,
    labels: &[TimeLabel],
) -> FamilyMatrix {
    let metric = fk.family.matrix_metric().to_string();
    let eval_times: Vec<String> = evals.values().cloned().collect();
    let value = |m: &ModelResults, split: &str| {
        record(&m.records, &fk.task_key(split))
            .and_then(|r| r.metric(&metric).or_else(|| r.main_metric()))
    };
    let raw: Vec<Vec<Option<f64>>> = run
        .models
        .iter()
        .map(|m| eval_times.iter().map(|e| value(m, e)).collect())
        .collect();
    let t = labels.len();
    let mut matrix = vec![vec![None; t]; t];
    for (mi, m) in run.models.iter().enumerate() {
        let i = labels
            .iter()
            .position(|l| *l == m.label)
            .expect("step of a model");
        for (j, cell) in matrix[i].iter_mut().enumerate() {
            let vals = evals
                .iter()
                .enumerate()
                .filter(|(_, (el, _))| step_of(labels, **el) == Some(j))
                .filter_map(|(e, _)| raw[mi][e]);
            *cell = mean(vals);
        }
    }
    let summary = transfer_summary(&matrix);
    FamilyMatrix {
        family: fk.clone(),
        metric,
        eval_times,
        raw,
        matrix,
        summary,
    }
}

/// Compute and summary numbers of each model of `run`, given its `matrices`.
fn step_points(
    run: &Run,
    matrices: &[FamilyMatrix],
    labels: &[TimeLabel],
    macs_per_sample: Option<f64>,
) -> Vec<StepPoint> {
    let mut cumulative = Some(0.0);
    run.models
        .iter()
        .map(|m| {
            cumulative = cumulative.zip(m.samples_seen).map(|(c, s)| c + s);
            let st = static_summary(m);
            let i = labels.iter().position(|l| *l == m.label).expect("step");
            let seen_so_far = matrices
                .iter()
                .map(|fm| mean(fm.matrix[i][..=i].iter().flatten().copied()))
                .collect();
            StepPoint {
                time: m.time.clone(),
                samples_seen: m.samples_seen,
                cumulative_samples: cumulative,
                cumulative_macs: cumulative.zip(macs_per_sample).map(|(c, k)| c * k),
                imagenet: st.imagenet,
                imagenet_and_shifts: st.imagenet_and_shifts,
                seen_so_far,
            }
        })
        .collect()
}

/// Computes the [`Report`] for `runs`: the common steps, the families found, then per run
/// its matrices, per-step points and static tasks.
pub fn analyze(runs: &[Run], macs_per_sample: Option<f64>) -> Result<Report> {
    if runs.is_empty() {
        bail!("no run given");
    }
    if let Some(dup) = runs
        .iter()
        .enumerate()
        .find(|(i, r)| runs[..*i].iter().any(|o| o.name == r.name))
    {
        bail!("run name {:?} is given twice", dup.1.name);
    }
    let (labels, steps) = common_steps(runs);
    let families = eval_families(runs);
    let reports = runs
        .iter()
        .map(|run| {
            let matrices: Vec<FamilyMatrix> = families
                .iter()
                .map(|(fk, evals)| family_matrix(run, fk, evals, &labels))
                .collect();
            let per_step = step_points(run, &matrices, &labels, macs_per_sample);
            let last = run.models.last().expect("runs have models");
            RunReport {
                name: run.name.clone(),
                train_times: run.models.iter().map(|m| m.time.clone()).collect(),
                matrices,
                static_tasks: static_summary(last),
                per_step,
            }
        })
        .collect();
    Ok(Report {
        steps,
        macs_per_sample,
        families: families.into_keys().collect(),
        runs: reports,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, Value};

    #[test]
    fn transfer_metrics_on_a_hand_computed_matrix() {
        // T = 3:
        //   [1 2 3]
        //   [4 5 6]
        //   [7 8 9]
        let m: Vec<Vec<Option<f64>>> = (0..3)
            .map(|i| (0..3).map(|j| Some((3 * i + j + 1) as f64)).collect())
            .collect();
        let s = transfer_summary(&m);
        assert_eq!(s.id, Some(5.0)); // (1+5+9)/3
        assert_eq!(s.backward, Some((4.0 + 7.0 + 8.0) / 3.0)); // 2/(T(T-1)) * 19
        assert_eq!(s.forward, Some((2.0 + 3.0 + 6.0) / 3.0));
        assert!(s.complete);
        assert_eq!(s.cells, 9);
        // T = 1: no transfer.
        let s = transfer_summary(&[vec![Some(0.5)]]);
        assert_eq!((s.id, s.backward, s.forward), (Some(0.5), None, None));
        // Oracle-like: only the last row.
        let m = vec![vec![None, None], vec![Some(0.2), Some(0.4)]];
        let s = transfer_summary(&m);
        assert_eq!((s.id, s.backward, s.forward), (Some(0.4), Some(0.2), None));
        assert!(!s.complete);
    }

    fn rec(key: &str, metric: &str, v: f64) -> EvalRecord {
        let mut m = Map::new();
        m.insert(metric.into(), Value::from(v));
        EvalRecord::new(key, key, m, Some(metric))
    }

    fn model(time: &str, recs: Vec<EvalRecord>, samples: f64) -> ModelResults {
        ModelResults {
            time: time.into(),
            label: TimeLabel::parse(time).unwrap(),
            records: recs,
            samples_seen: Some(samples),
            source: PathBuf::new(),
        }
    }

    #[test]
    fn eval_years_group_into_steps_and_static_uses_the_last_model() {
        let r = |y: u32, v: f64| {
            rec(
                &format!("tic/datacomp/retrieval/yearly/{y}"),
                "mean_recall@1",
                v,
            )
        };
        let run = Run::new(
            "seq",
            vec![
                model(
                    "2017",
                    vec![r(2015, 0.1), r(2016, 0.3), r(2017, 0.5), r(2018, 0.7)],
                    10.0,
                ),
                model(
                    "2014-2016",
                    vec![
                        r(2015, 0.2),
                        r(2016, 0.4),
                        r(2017, 0.6),
                        r(2018, 0.8),
                        rec("imagenet1k", "acc1", 0.3),
                    ],
                    10.0,
                ),
            ],
        )
        .unwrap();
        assert_eq!(run.models[0].time, "2014-2016");
        let rep = analyze(&[run], Some(2.0)).unwrap();
        assert_eq!(rep.steps, ["2014-2016", "2017"]);
        let fm = &rep.runs[0].matrices[0];
        assert_eq!(fm.eval_times, ["2015", "2016", "2017", "2018"]);
        // Step 0 = evals 2015, 2016; step 1 = 2017; 2018 is after the last step.
        let close =
            |a: Option<f64>, b: f64| assert!((a.unwrap() - b).abs() < 1e-12, "{a:?} vs {b}");
        close(fm.matrix[0][0], 0.3);
        close(fm.matrix[0][1], 0.6);
        close(fm.matrix[1][0], 0.2);
        close(fm.matrix[1][1], 0.5);
        close(fm.summary.id, 0.4);
        close(fm.summary.backward, 0.2);
        close(fm.summary.forward, 0.6);
        let steps = &rep.runs[0].per_step;
        assert_eq!(steps[1].cumulative_samples, Some(20.0));
        assert_eq!(steps[1].cumulative_macs, Some(40.0));
        close(steps[1].seen_so_far[0], 0.35);
        // Static tasks come from the last model (2017), which has no ImageNet record.
        assert_eq!(rep.runs[0].static_tasks.time.as_deref(), Some("2017"));
        assert_eq!(rep.runs[0].static_tasks.imagenet, None);
        assert_eq!(steps[0].imagenet, Some(0.3));
    }

    #[test]
    fn duplicate_times_and_names_are_rejected() {
        let a = model("2016", vec![], 1.0);
        let b = model("2016", vec![], 1.0);
        assert!(Run::new("x", vec![a.clone(), b]).is_err());
        assert!(Run::new("x", vec![]).is_err());
        let r = Run::new("x", vec![a]).unwrap();
        assert!(analyze(&[r.clone(), r], None).is_err());
    }
}
