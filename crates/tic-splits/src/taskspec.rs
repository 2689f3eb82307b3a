//! One task's entry in DataComp's `tasklist.yml`: the schema `tic-tasklist` writes and
//! `tic-eval` reads (DataComp's own lists included).
//!
//! ```yaml
//! tic/datacomp/retrieval/yearly/2016:
//!   name: TiC-DataComp-Retrieval-Yearly-2016   # record name; default: the key
//!   main_metric: mean_recall@1                  # default acc1; null = no summary metric
//!   size: 1234                                  # optional sample count
//!   num_classes: 1000
//!   random_score: 0.001
//!   time: 20
//!   tags: [tic, retrieval]
//! ```
//!
//! Written as PyYAML's `yaml.dump` writes `generate_tasklist.py`'s entries: fields in
//! alphabetical order, absent fields left out, a whole `time` as an integer.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One task's entry in `tasklist.yml`. Unknown fields are refused (a misspelt `main_metric`
/// would otherwise be ignored and the default used). Fields are declared in alphabetical
/// order, the order PyYAML writes them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// Absent: `acc1`; explicit `null`: no main metric.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub main_metric: Option<Option<String>>,
    /// Display name, used as `dataset` in result records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Number of classes (classification tasks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_classes: Option<u64>,
    /// Chance-level score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_score: Option<f64>,
    /// Number of samples (DataComp passes it as the WebDataset length).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Free-form tags (`vtab_natural`, `retrieval`, `tic`, …).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Approximate evaluation time (DataComp bookkeeping).
    #[serde(
        default,
        serialize_with = "whole_as_integer",
        skip_serializing_if = "Option::is_none"
    )]
    pub time: Option<f64>,
}

/// The fields a `tasklist.yml` entry may have (DataComp's).
pub const TASK_FIELDS: [&str; 7] = [
    "name",
    "size",
    "main_metric",
    "num_classes",
    "random_score",
    "time",
    "tags",
];

/// Deserialises a present field (even `null`) as `Some(..)`; `#[serde(default)]` gives `None`
/// when the field is absent.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// Writes a whole number as an integer (`time: 20`, as DataComp's lists), anything else as a
/// float.
fn whole_as_integer<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match *v {
        Some(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => s.serialize_i64(x as i64),
        Some(x) => s.serialize_f64(x),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_sorted_fields_and_whole_times_as_integers() {
        let spec = TaskSpec {
            main_metric: Some(Some("mean_recall@1".into())),
            name: Some("TiC-DataComp-Retrieval-Yearly-2014".into()),
            tags: vec!["tic".into(), "retrieval".into()],
            time: Some(20.0),
            ..Default::default()
        };
        let yaml = serde_yaml::to_string(&spec).unwrap();
        assert_eq!(
            yaml,
            "main_metric: mean_recall@1\nname: TiC-DataComp-Retrieval-Yearly-2014\ntags:\n- tic\n- retrieval\ntime: 20\n"
        );
        assert_eq!(serde_yaml::from_str::<TaskSpec>(&yaml).unwrap(), spec);
        let half = TaskSpec {
            time: Some(1.5),
            ..Default::default()
        };
        assert!(serde_yaml::to_string(&half).unwrap().contains("time: 1.5"));
        let null: TaskSpec = serde_yaml::from_str("main_metric: null\n").unwrap();
        assert_eq!(null.main_metric, Some(None));
    }
}
