//! Reading DataComp / TiC `tasklist.yml` files: every task's key and entry, validated.
//!
//! The entry schema is [`tic_splits::taskspec::TaskSpec`] (what `tic-tasklist` writes), the
//! key grammar [`tic_splits::taskkey`]. TiC keys `tic/{datacomp,yfcc15m,redcaps}/{retrieval,datacompnet}/{yearly,monthly}/{YYYY|YYYYMM}`
//! resolve to `{data_dir}/tic/{ds}/{timescale}/eval/{retrieval|datacompnet}/{split}` with an
//! empty WebDataset split (TiC's `datacomp.patch`); any other key `k` resolves to DataComp's
//! `{data_dir}/wds_{k with '/' → '-'}_test` with split `test` (`fairness/X`: `wds_X_test`).
//!
//! Parsing is strict, so a typo cannot silently turn into `main_metric: null` in the results:
//! a field other than the seven of [`TASK_FIELDS`] is an error naming it and the task, and so
//! is a `main_metric` the task's type never produces (see [`TaskMetrics::produces_metric`]).

use crate::metrics::retrieval::DATACOMP_RECALL_KS;
use anyhow::{bail, Context, Result};
use std::path::Path;
use tic_splits::taskkey::TaskKey;
use tic_splits::taskspec::{TaskSpec, TASK_FIELDS};

/// DataComp's special main metrics (WinoGAViL, iWildCam, FMoW, Dollar Street, GeoDE), named
/// in its `tasklist.yml` and computed by their tasks' special evaluators (`metrics::wilds`,
/// `metrics::winogavil`): a non-TiC classification task naming one parses (DataComp's own task
/// list keeps working); a task whose evaluator does not produce it records `main_metric: null`.
pub const DATACOMP_SPECIAL_METRICS: [&str; 5] = [
    "jaccard_score_10-12",
    "F1-macro_all",
    "acc_worst_region",
    "acc_top5_wg",
    "acc_wg",
];

/// A task: its key and its spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// The task key (e.g. `imagenet1k`, `tic/datacomp/datacompnet/yearly/2016`).
    pub key: String,
    /// Its `tasklist.yml` entry.
    pub spec: TaskSpec,
}

impl Task {
    /// The record name: `name`, else the key.
    pub fn name(&self) -> &str {
        self.spec.name.as_deref().unwrap_or(&self.key)
    }

    /// The main metric: `acc1` unless the spec sets another one or `null`.
    pub fn main_metric(&self) -> Option<&str> {
        match &self.spec.main_metric {
            None => Some("acc1"),
            Some(m) => m.as_deref(),
        }
    }

    /// The parsed key.
    pub fn parsed_key(&self) -> Result<TaskKey> {
        TaskKey::parse(&self.key)
    }
}

/// The tasks of a `tasklist.yml`, in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskList {
    tasks: Vec<Task>,
}

impl TaskList {
    /// Parses YAML text (`source` names it in errors). Every key must parse (see [`TaskKey`]).
    pub fn from_yaml_str(text: &str, source: &str) -> Result<Self> {
        let map: Option<serde_yaml::Mapping> =
            serde_yaml::from_str(text).with_context(|| format!("{source}: not valid YAML"))?;
        let mut tasks = Vec::new();
        for (k, v) in map.unwrap_or_default() {
            let key = match k {
                serde_yaml::Value::String(s) => s,
                other => bail!("{source}: task key {other:?} is not a string"),
            };
            let parsed = TaskKey::parse(&key).with_context(|| format!("{source}: task {key:?}"))?;
            let spec: TaskSpec = match v {
                serde_yaml::Value::Null => TaskSpec::default(),
                serde_yaml::Value::Mapping(m) => {
                    check_fields(&m, &key, source)?;
                    serde_yaml::from_value(serde_yaml::Value::Mapping(m))
                        .with_context(|| format!("{source}: task {key:?}"))?
                }
                other => {
                    bail!("{source}: task {key:?}: expected a mapping of fields, got {other:?}")
                }
            };
            let task = Task { key, spec };
            match &task.spec.main_metric {
                Some(Some(m)) if !parsed.produces_metric(m) => bail!(
                    "{source}: task {:?}: main_metric {m:?} is not a metric a {} task produces (one of {}{})",
                    task.key,
                    parsed.kind_name(),
                    parsed.metric_names().join(", "),
                    if parsed.is_retrieval() {
                        ""
                    } else {
                        ", restricted_acc1/GROUP"
                    }
                ),
                None if parsed.is_retrieval() => tracing::warn!(
                    "{source}: retrieval task {:?} has no main_metric: its default, acc1, is not a retrieval metric, so its main_metric will be null (DataComp's lists set mean_recall@1)",
                    task.key
                ),
                _ => {}
            }
            tasks.push(task);
        }
        Ok(Self { tasks })
    }

    /// Reads and parses a `tasklist.yml`.
    pub fn from_path(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading task list {}", path.display()))?;
        Self::from_yaml_str(&text, &path.display().to_string())
    }

    /// The tasks in file order.
    pub fn tasks(&self) -> &[Task] {
        &self.tasks
    }

    /// The task with key `key`.
    pub fn get(&self, key: &str) -> Option<&Task> {
        self.tasks.iter().find(|t| t.key == key)
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

/// Refuses a field outside [`TASK_FIELDS`], naming it, the task and the nearest known field.
fn check_fields(m: &serde_yaml::Mapping, key: &str, source: &str) -> Result<()> {
    for f in m.keys() {
        let name = match f {
            serde_yaml::Value::String(s) => s.as_str(),
            other => bail!("{source}: task {key:?}: field {other:?} is not a string"),
        };
        if !TASK_FIELDS.contains(&name) {
            let near = TASK_FIELDS
                .iter()
                .min_by_key(|k| edit_distance(k, name))
                .filter(|k| edit_distance(k, name) <= 2)
                .map(|k| format!(" (did you mean {k:?}?)"))
                .unwrap_or_default();
            bail!(
                "{source}: task {key:?}: unknown field {name:?}{near}; a task's fields are {}",
                TASK_FIELDS.join(", ")
            );
        }
    }
    Ok(())
}

/// Levenshtein distance (for "did you mean" hints).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// What tic-eval records for a task key's type: the metric names a `main_metric` may name.
pub trait TaskMetrics {
    /// The metric names tic-eval records for this task's type (`evaluate::evaluate_set`):
    /// retrieval: `image_retrieval_recall@k`, `text_retrieval_recall@k` (k = 1, 5, 10) and
    /// `mean_recall@1`; classification: `acc1`, `acc5`, `mean_per_class_recall` (plus
    /// `restricted_acc1/GROUP` with `--class-groups`, not listed here).
    fn metric_names(&self) -> Vec<String>;

    /// Whether `metric` can be this task's `main_metric`: one of [`Self::metric_names`]; for
    /// classification also `restricted_acc1/GROUP`, and for a non-TiC classification task one
    /// of [`DATACOMP_SPECIAL_METRICS`] (`null` where the task's evaluator does not produce it).
    fn produces_metric(&self, metric: &str) -> bool;
}

impl TaskMetrics for TaskKey {
    fn metric_names(&self) -> Vec<String> {
        if self.is_retrieval() {
            let mut v: Vec<String> = DATACOMP_RECALL_KS
                .iter()
                .flat_map(|k| {
                    [
                        format!("image_retrieval_recall@{k}"),
                        format!("text_retrieval_recall@{k}"),
                    ]
                })
                .collect();
            v.push("mean_recall@1".into());
            v
        } else {
            ["acc1", "acc5", "mean_per_class_recall"]
                .map(String::from)
                .to_vec()
        }
    }

    fn produces_metric(&self, metric: &str) -> bool {
        if self.metric_names().iter().any(|m| m == metric) {
            return true;
        }
        if self.is_retrieval() {
            return false;
        }
        if metric
            .strip_prefix("restricted_acc1/")
            .is_some_and(|g| !g.is_empty())
        {
            return true;
        }
        matches!(self, TaskKey::Static(_)) && DATACOMP_SPECIAL_METRICS.contains(&metric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
imagenet1k:
  name: ImageNet 1k
  size: 50000
  time: 136
  num_classes: 1000
  random_score: 0.001000
  tags:
    - val_task
retrieval/flickr30k:
  name: Flickr
  main_metric: mean_recall@1
  tags: [retrieval]
fairness/fairface:
  name: FairFace
  main_metric: null
tic/datacomp/retrieval/yearly/2014:
  name: TiC-DataComp-Retrieval-Yearly-2014
  main_metric: mean_recall@1
  time: 20
  tags: [tic, retrieval]
tic/datacomp/datacompnet/monthly/201403:
  name: TiC-DataCompNet-Monthly-201403
  num_classes: 1000
bare_key:
"#;

    #[test]
    fn parses_fields_defaults_and_order() {
        let tl = TaskList::from_yaml_str(YAML, "tasklist.yml").unwrap();
        let keys: Vec<_> = tl.tasks().iter().map(|t| t.key.as_str()).collect();
        assert_eq!(keys[0], "imagenet1k");
        assert_eq!(keys[5], "bare_key");
        let inet = tl.get("imagenet1k").unwrap();
        assert_eq!(inet.name(), "ImageNet 1k");
        assert_eq!(inet.main_metric(), Some("acc1"));
        assert_eq!(inet.spec.size, Some(50000));
        assert_eq!(inet.spec.num_classes, Some(1000));
        assert_eq!(inet.spec.random_score, Some(0.001));
        assert_eq!(inet.spec.time, Some(136.0));
        assert_eq!(inet.spec.tags, ["val_task"]);
        assert_eq!(
            tl.get("retrieval/flickr30k").unwrap().main_metric(),
            Some("mean_recall@1")
        );
        assert_eq!(tl.get("fairness/fairface").unwrap().main_metric(), None);
        let m = tl.get("tic/datacomp/datacompnet/monthly/201403").unwrap();
        assert_eq!(m.spec.num_classes, Some(1000));
        assert_eq!(tl.get("bare_key").unwrap().name(), "bare_key");
    }

    #[test]
    fn malformed_tic_keys_are_refused_naming_the_file() {
        let err = TaskList::from_yaml_str("tic/x: {}\n", "t.yml").unwrap_err();
        assert!(format!("{err:#}").contains("t.yml"), "{err:#}");
    }

    fn err(yaml: &str) -> String {
        format!(
            "{:#}",
            TaskList::from_yaml_str(yaml, "tasklist.yml").unwrap_err()
        )
    }

    #[test]
    fn unknown_fields_are_refused_naming_field_and_task() {
        let e = err("tic/datacomp/retrieval/yearly/2014:\n  main_metirc: mean_recall@1\n");
        assert!(e.contains("tasklist.yml"), "{e}");
        assert!(e.contains("main_metirc"), "{e}");
        assert!(e.contains("tic/datacomp/retrieval/yearly/2014"), "{e}");
        assert!(e.contains("did you mean \"main_metric\""), "{e}");
        let e = err("imagenet1k:\n  name: ImageNet\n  custom_field: 3\n");
        assert!(
            e.contains("custom_field") && e.contains("imagenet1k"),
            "{e}"
        );
        assert!(!e.contains("did you mean"), "{e}");
        let e = err("imagenet1k: [acc1]\n");
        assert!(e.contains("imagenet1k") && e.contains("mapping"), "{e}");
    }

    #[test]
    fn main_metrics_the_task_type_cannot_produce_are_refused() {
        // A typo of a retrieval metric.
        let e = err("retrieval/flickr30k:\n  main_metric: mean_recal@1\n");
        assert!(e.contains("mean_recal@1"), "{e}");
        assert!(e.contains("retrieval/flickr30k"), "{e}");
        assert!(e.contains("retrieval task"), "{e}");
        assert!(e.contains("mean_recall@1"), "{e}");
        // A retrieval metric on a classification task, and the other way round.
        let e = err("tic/datacomp/datacompnet/yearly/2016:\n  main_metric: mean_recall@1\n");
        assert!(
            e.contains("tic/datacomp/datacompnet/yearly/2016") && e.contains("classification task"),
            "{e}"
        );
        let e = err("tic/datacomp/retrieval/yearly/2016:\n  main_metric: acc1\n");
        assert!(
            e.contains("\"acc1\"") && e.contains("retrieval task"),
            "{e}"
        );
        // DataComp's unimplemented metrics only on static classification tasks.
        let e = err("tic/datacomp/datacompnet/yearly/2016:\n  main_metric: acc_wg\n");
        assert!(e.contains("acc_wg"), "{e}");
        let e = err("retrieval/x:\n  main_metric: acc_wg\n");
        assert!(e.contains("acc_wg"), "{e}");
        assert!(err("imagenet1k:\n  main_metric: restricted_acc1/\n").contains("restricted_acc1/"));
        // What each type produces parses.
        let ok = "\
imagenet1k:\n  main_metric: mean_per_class_recall\n\
vtab/pets:\n  main_metric: acc5\n\
tic/datacomp/datacompnet/yearly/2014:\n  main_metric: restricted_acc1/dogs\n\
fairness/geode:\n  main_metric: acc_wg\n\
misc/winogavil:\n  main_metric: jaccard_score_10-12\n\
retrieval/a:\n  main_metric: image_retrieval_recall@5\n\
retrieval/b:\n  main_metric: text_retrieval_recall@10\n\
tic/datacomp/retrieval/monthly/201403:\n  main_metric: mean_recall@1\n\
fairness/fairface:\n  main_metric: null\n";
        let tl = TaskList::from_yaml_str(ok, "ok.yml").unwrap();
        assert_eq!(tl.len(), 9);
        assert_eq!(
            tl.get("fairness/geode").unwrap().main_metric(),
            Some("acc_wg")
        );
    }

    #[test]
    fn metric_names_match_what_evaluation_records() {
        use crate::metrics::{retrieval, ClassificationMetrics};
        let c = ClassificationMetrics {
            acc1: 0.5,
            acc5: Some(0.9),
            mean_per_class_recall: 0.4,
            num_samples: 2,
        };
        let k = TaskKey::parse("tic/datacomp/datacompnet/yearly/2014").unwrap();
        let mut want: Vec<String> = c.to_json().keys().cloned().collect();
        let mut got = k.metric_names();
        want.sort();
        got.sort();
        assert_eq!(got, want);
        let img = crate::matrix::Matrix::new(2, 2, vec![1.0, 0.0, 0.0, 1.0]).unwrap();
        let r = retrieval::evaluate(&img, &img, &[0, 1]).unwrap();
        let mut want: Vec<String> = r.to_json().keys().cloned().collect();
        let k = TaskKey::parse("retrieval/flickr30k").unwrap();
        let mut got = k.metric_names();
        want.sort();
        got.sort();
        assert_eq!(got, want);
    }

    /// The task lists `tic-tasklist` writes (tic-splits' byte-exact fixtures, found through
    /// tic-testkit), the demo's static task and DataComp's own list keep parsing.
    #[test]
    fn generated_and_datacomp_tasklists_parse() {
        let dir = tic_testkit::fixture_dir("tic-splits").join("tasklist");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "yml") {
                TaskList::from_path(&p).unwrap_or_else(|e| panic!("{e:#}"));
                n += 1;
            }
        }
        assert!(n >= 5, "{n} fixtures in {}", dir.display());
        let synth_static = "synth_static:\n  name: Synthetic static (16 concepts, all years)\n  size: 320\n  num_classes: 16\n  tags:\n  - static\n  - classification\n";
        TaskList::from_yaml_str(synth_static, "static").unwrap();
        let datacomp = "\
vtab/caltech101:\n  name: Caltech-101\n  size: 6085\n  main_metric: mean_per_class_recall\n  time: 29\n  num_classes: 102\n  random_score: 0.009804\n  tags:\n    - vtab_natural\n\
retrieval/flickr30k:\n  name: Flickr\n  size: 31014\n  main_metric: mean_recall@1\n  time: 115\n  tags:\n    - retrieval\n\
misc/winogavil:\n  name: WinoGAViL\n  size: 3563\n  main_metric: jaccard_score_10-12\n  time: 1096\n  random_score: 0.205000\n  tags: []\n\
wilds/iwildcam:\n  main_metric: F1-macro_all\n  num_classes: 182\n\
wilds/fmow:\n  main_metric: acc_worst_region\n\
fairness/dollar_street:\n  main_metric: acc_top5_wg\n\
fairness/geode:\n  main_metric: acc_wg\n\
fairness/utkface:\n  name: UTKFace\n  size: 23703\n  time: 32\n  tags:\n    - fairness\n";
        assert_eq!(
            TaskList::from_yaml_str(datacomp, "datacomp").unwrap().len(),
            8
        );
    }
}
