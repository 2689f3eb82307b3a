//! `tic-tasklist`: the TiC dynamic eval tasks in DataComp's `tasklist.yml` format.
//!
//! Mirrors `generate_tasklist.py`: keys `tic/{dataset}/{retrieval|datacompnet}/{yearly|monthly}/{t}`
//! with the same names, `main_metric`, `num_classes`, `time` and `tags`, years 2014–2022 and the
//! original's exact list of 102 months; `--sample-eval` keeps 2014 and 201403. PyYAML's
//! `yaml.dump` sorts keys, so the output is sorted too (byte-identical for the same tasks).
//! Extension: years/months can be read from a data folder ([`periods_from_names`]).
//!
//! Keys are spelled by [`crate::taskkey`], entries are [`crate::taskspec::TaskSpec`]s (the
//! schema `tic-eval` reads back); [`cli`] is the command line.
use crate::taskkey::{TicFamily, TicTask, Timescale};
use crate::taskspec::TaskSpec;
use anyhow::Result;
use std::collections::{BTreeMap, BTreeSet};
use tic_shards::storage::Location;

pub mod cli;

/// The years of TiC-DataComp's eval tasks.
pub const YEARS: std::ops::Range<u32> = 2014..2023;

/// The months of TiC-DataComp's monthly eval tasks (the original's hard-coded list, with gaps).
pub const MONTHS: [&str; 102] = [
    "201403", "201404", "201407", "201408", "201409", "201410", "201411", "201412", //
    "201501", "201502", "201503", "201504", "201505", "201506", "201507", "201508", "201510",
    "201511", //
    "201602", "201604", "201605", "201606", "201607", "201608", "201609", "201610",
    "201612", //
    "201701", "201702", "201703", "201704", "201705", "201706", "201707", "201708", "201709",
    "201710", "201711", "201712", //
    "201801", "201802", "201803", "201804", "201805", "201806", "201807", "201808", "201809",
    "201810", "201811", "201812", //
    "201901", "201902", "201903", "201904", "201905", "201906", "201907", "201908", "201909",
    "201910", "201911", "201912", //
    "202001", "202002", "202003", "202004", "202005", "202006", "202007", "202008", "202009",
    "202010", "202011", "202012", //
    "202101", "202102", "202103", "202104", "202105", "202106", "202107", "202108", "202109",
    "202110", "202111", "202112", //
    "202201", "202205", "202206", "202207", "202208", "202209", "202210", "202211",
    "202212", //
    "202301", "202302", "202303", "202304", "202305", "202306",
];

/// The four task families, as spelled in `--eval-tasks` (`{family}/{timescale}`).
pub const TASK_FAMILIES: [&str; 4] = [
    "retrieval/yearly",
    "datacompnet/yearly",
    "retrieval/monthly",
    "datacompnet/monthly",
];

/// What to generate.
#[derive(Debug, Clone)]
pub struct TaskListConfig {
    /// Years for the yearly tasks.
    pub years: Vec<String>,
    /// Months (`YYYYMM`) for the monthly tasks.
    pub months: Vec<String>,
    /// The `--eval-tasks` string; a family is included when its name occurs in it (the
    /// original's substring test).
    pub eval_tasks: String,
    /// Key segment after `tic/` (`datacomp`).
    pub dataset: String,
    /// Name prefix after `TiC-` (`DataComp`; classification uses `{label}Net`).
    pub label: String,
}

impl Default for TaskListConfig {
    fn default() -> Self {
        TaskListConfig {
            years: YEARS.map(|y| y.to_string()).collect(),
            months: MONTHS.iter().map(|m| m.to_string()).collect(),
            eval_tasks: TASK_FAMILIES.join(","),
            dataset: "datacomp".into(),
            label: "DataComp".into(),
        }
    }
}

impl TaskListConfig {
    /// The original's `--sample-eval`: only 2014 and 201403.
    pub fn sample_eval(mut self) -> Self {
        self.years = vec!["2014".into()];
        self.months = vec!["201403".into()];
        self
    }
}

/// The entry of `task`, as `generate_tasklist.py` writes it: name, `main_metric` and tags of
/// its family, DataComp's time estimate 20.
fn entry(label: &str, task: &TicTask) -> TaskSpec {
    let period = match task.timescale {
        Timescale::Yearly => "Yearly",
        Timescale::Monthly => "Monthly",
    };
    let t = &task.split;
    let spec = TaskSpec {
        time: Some(20.0),
        ..TaskSpec::default()
    };
    match task.family {
        TicFamily::Retrieval => TaskSpec {
            main_metric: Some(Some("mean_recall@1".into())),
            name: Some(format!("TiC-{label}-Retrieval-{period}-{t}")),
            tags: vec!["tic".into(), "retrieval".into()],
            ..spec
        },
        TicFamily::Datacompnet => TaskSpec {
            name: Some(format!("TiC-{label}Net-{period}-{t}")),
            num_classes: Some(1000),
            tags: vec!["tic".into(), "classification".into()],
            ..spec
        },
    }
}

/// Builds the task map (sorted by key, as `yaml.dump` writes it): every time of each family
/// named in `cfg.eval_tasks`.
pub fn build(cfg: &TaskListConfig) -> BTreeMap<String, TaskSpec> {
    let mut out = BTreeMap::new();
    for family in [TicFamily::Retrieval, TicFamily::Datacompnet] {
        for timescale in [Timescale::Yearly, Timescale::Monthly] {
            if !cfg.eval_tasks.contains(&format!("{family}/{timescale}")) {
                continue;
            }
            let times = match timescale {
                Timescale::Yearly => &cfg.years,
                Timescale::Monthly => &cfg.months,
            };
            for time in times {
                let task = TicTask {
                    dataset: cfg.dataset.clone(),
                    family,
                    timescale,
                    split: time.clone(),
                };
                out.insert(task.to_string(), entry(&cfg.label, &task));
            }
        }
    }
    out
}

/// Renders the tasks as PyYAML's `yaml.dump` does (block style, sorted keys; `{}` when empty).
pub fn to_yaml(tasks: &BTreeMap<String, TaskSpec>) -> Result<String> {
    Ok(serde_yaml::to_string(tasks)?)
}

/// Renders `base` (a DataComp `tasklist.yml`, e.g. its static tasks) followed by `tasks`, in
/// that order; a key present in both keeps the TiC definition. `what` names the base file in
/// errors.
pub fn to_yaml_with_base(
    base: &str,
    what: &str,
    tasks: &BTreeMap<String, TaskSpec>,
) -> Result<String> {
    let mut map: serde_yaml::Mapping = if base.trim().is_empty() {
        serde_yaml::Mapping::new()
    } else {
        serde_yaml::from_str(base)
            .map_err(|e| anyhow::anyhow!("{what}: not a task list (a YAML mapping): {e}"))?
    };
    for (key, task) in tasks {
        map.insert(key.clone().into(), serde_yaml::to_value(task)?);
    }
    Ok(serde_yaml::to_string(&map)?)
}

/// `--eval-tasks` entries that name no task family (the original silently ignores them).
pub fn unknown_families(eval_tasks: &str) -> Vec<String> {
    eval_tasks
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty() && !TASK_FAMILIES.contains(t))
        .map(str::to_string)
        .collect()
}

/// Years (`YYYY`) and months (`YYYYMM`) spelled by file or folder names: the part of a name
/// before its first `.` (`2016.npy`, `201403.tar`, `2017/`). A range of either (`2004-2008`,
/// `201401-201406`: a TiC-YFCC15M year group) counts as one period of its kind. Sorted and
/// unique.
pub fn periods_from_names<'a>(
    names: impl IntoIterator<Item = &'a str>,
) -> (Vec<String>, Vec<String>) {
    let mut years = BTreeSet::new();
    let mut months = BTreeSet::new();
    for n in names {
        let stem = n.split('.').next().unwrap_or("");
        match Timescale::of_split(stem) {
            Some(Timescale::Yearly) => years.insert(stem.to_string()),
            Some(Timescale::Monthly) => months.insert(stem.to_string()),
            None => false,
        };
    }
    (years.into_iter().collect(), months.into_iter().collect())
}

/// Names of everything under `dir` down to `depth` levels (files and folders).
pub fn list_names(dir: &Location, depth: usize) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for e in dir.list()? {
        if e.is_dir && depth > 1 {
            out.extend(list_names(&dir.join(&e.name), depth - 1)?);
        }
        out.push(e.name);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_sample() {
        let all = build(&TaskListConfig::default());
        assert_eq!(all.len(), 2 * 9 + 2 * 102);
        let s = build(&TaskListConfig::default().sample_eval());
        assert_eq!(s.len(), 4);
        assert!(s.contains_key("tic/datacomp/retrieval/monthly/201403"));
        let mut sorted = MONTHS.to_vec();
        sorted.sort();
        assert_eq!(sorted, MONTHS.to_vec());
    }

    #[test]
    fn periods() {
        let (y, m) = periods_from_names([
            "2016.npy",
            "2014",
            "201403.tar",
            "201413",
            "x.npy",
            "2014.pkl",
        ]);
        assert_eq!(y, vec!["2014", "2016"]);
        assert_eq!(m, vec!["201403"]);
        assert_eq!(unknown_families("retrieval/yearly, foo"), vec!["foo"]);
        // TiC-YFCC15M's year groups are ranges; malformed or mixed ranges are not periods.
        let (y, m) = periods_from_names([
            "2009-2010",
            "2004-2008",
            "201401-201406",
            "2010-2009",
            "2014-201403",
            "2014-",
        ]);
        assert_eq!(y, vec!["2004-2008", "2009-2010"]);
        assert_eq!(m, vec!["201401-201406"]);
    }
}

#[cfg(test)]
mod base_tests {
    use super::*;

    #[test]
    fn base_tasks_come_first_and_tic_tasks_win() {
        let cfg = TaskListConfig::default().sample_eval();
        let tasks = build(&cfg);
        let base = "imagenet1k:\n  name: ImageNet 1k\n  size: 50000\n  num_classes: 1000\ntic/datacomp/retrieval/yearly/2014:\n  name: old\n";
        let y = to_yaml_with_base(base, "base.yml", &tasks).unwrap();
        assert!(y.starts_with("imagenet1k:\n  name: ImageNet 1k\n"), "{y}");
        assert!(!y.contains("name: old"), "{y}");
        assert!(y.contains("TiC-DataComp-Retrieval-Yearly-2014"), "{y}");
        let err = to_yaml_with_base("- a\n- b\n", "base.yml", &tasks).unwrap_err();
        assert!(err.to_string().contains("base.yml"), "{err}");
    }
}
