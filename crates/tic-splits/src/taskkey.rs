//! The TiC task-key grammar, the one contract between the task lists `tic-tasklist` writes and
//! what `tic-eval` evaluates and `tic-metrics` groups into matrices.
//!
//! A TiC key is `tic/{dataset}/{retrieval|datacompnet}/{yearly|monthly}/{time}`: a source
//! dataset ([`TIC_DATASETS`]), a family ([`TicFamily`]), a timescale ([`Timescale`]) and a
//! split named by its time, `YYYY` (yearly) or `YYYYMM` (monthly), or a range `A-B` of those
//! (`2004-2008`, TiC-YFCC15M's year groups; see [`TimeLabel`]). Any other key is a static
//! DataComp task (`imagenet1k`, `retrieval/flickr30k`, …). [`TaskKey::parse`] reads a key and
//! `Display` writes it back, so the writer, the reader and the analysis spell keys one way.
//!
//! A TiC key also says where its evaluation set lives (TiC's `datacomp.patch`):
//! `{data_dir}/tic/{dataset}/{timescale}/eval/{family}/{time}` ([`TaskKey::data_location`]).

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use tic_shards::evalset_layout::DATACOMP_SPLIT;

/// The TiC evaluation families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TicFamily {
    /// Image–text retrieval (`mean_recall@1`).
    Retrieval,
    /// DataCompNet zero-shot classification (`acc1`).
    Datacompnet,
}

impl TicFamily {
    /// The key segment (`retrieval` / `datacompnet`).
    pub fn as_str(self) -> &'static str {
        match self {
            TicFamily::Retrieval => "retrieval",
            TicFamily::Datacompnet => "datacompnet",
        }
    }

    /// The metric of the dynamic T×T matrix for this family.
    pub fn matrix_metric(self) -> &'static str {
        match self {
            TicFamily::Retrieval => "mean_recall@1",
            TicFamily::Datacompnet => "acc1",
        }
    }
}

impl fmt::Display for TicFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Yearly or monthly TiC splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Timescale {
    /// `YYYY` splits.
    Yearly,
    /// `YYYYMM` splits.
    Monthly,
}

impl Timescale {
    /// The key segment.
    pub fn as_str(self) -> &'static str {
        match self {
            Timescale::Yearly => "yearly",
            Timescale::Monthly => "monthly",
        }
    }

    /// Digits of one time of this timescale: 4 (`YYYY`) or 6 (`YYYYMM`).
    pub fn digits(self) -> usize {
        match self {
            Timescale::Yearly => 4,
            Timescale::Monthly => 6,
        }
    }

    /// The timescale whose split names `split` spells: `YYYY` or a range `YYYY-YYYY` (yearly),
    /// `YYYYMM` or `YYYYMM-YYYYMM` (monthly, months 1–12), a range never ending before it
    /// starts; `None` for anything else (mixed or longer ranges included).
    pub fn of_split(split: &str) -> Option<Timescale> {
        let width = split.split('-').next().map_or(0, str::len);
        let timescale = [Timescale::Yearly, Timescale::Monthly]
            .into_iter()
            .find(|t| t.digits() == width)?;
        let widths_ok = split.split('-').all(|p| p.len() == width) && split.split('-').count() <= 2;
        (widths_ok && TimeLabel::parse(split).is_ok()).then_some(timescale)
    }
}

impl fmt::Display for Timescale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The TiC source datasets.
pub const TIC_DATASETS: [&str; 3] = ["datacomp", "yfcc15m", "redcaps"];

/// A parsed `tic/{ds}/{family}/{timescale}/{split}` key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TicTask {
    /// `datacomp`, `yfcc15m` or `redcaps`.
    pub dataset: String,
    /// Retrieval or DataCompNet.
    pub family: TicFamily,
    /// Yearly or monthly.
    pub timescale: Timescale,
    /// `YYYY` or `YYYYMM`, or a range `A-B` of those (`2004-2008`).
    pub split: String,
}

impl TicTask {
    /// `{data_dir}/tic/{ds}/{timescale}/eval/{family}/{split}`.
    pub fn data_path(&self, data_dir: &Path) -> PathBuf {
        data_dir
            .join("tic")
            .join(&self.dataset)
            .join(self.timescale.as_str())
            .join("eval")
            .join(self.family.as_str())
            .join(&self.split)
    }

    /// The evaluation time of the split.
    pub fn time(&self) -> TimeLabel {
        TimeLabel::parse(&self.split).expect("validated when parsing the key")
    }
}

/// The key: `tic/{dataset}/{family}/{timescale}/{split}`.
impl fmt::Display for TicTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tic/{}/{}/{}/{}",
            self.dataset, self.family, self.timescale, self.split
        )
    }
}

/// A task key: a TiC dynamic task, or any other (static) DataComp task.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskKey {
    /// `tic/...`.
    Tic(TicTask),
    /// Any other key (`imagenet1k`, `vtab/cifar100`, `retrieval/flickr30k`, …).
    Static(String),
}

impl TaskKey {
    /// Parses a key; a key starting with `tic/` must be a well-formed TiC key.
    pub fn parse(key: &str) -> Result<Self> {
        let Some(rest) = key.strip_prefix("tic/") else {
            if key.is_empty() {
                bail!("empty task key");
            }
            return Ok(TaskKey::Static(key.to_string()));
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let [ds, family, timescale, split] = parts[..] else {
            bail!("TiC key {key:?} is not tic/{{dataset}}/{{retrieval|datacompnet}}/{{yearly|monthly}}/{{YYYY|YYYYMM}}");
        };
        if !TIC_DATASETS.contains(&ds) {
            bail!("TiC key {key:?}: unknown dataset {ds:?} (expected one of {TIC_DATASETS:?})");
        }
        let family = match family {
            "retrieval" => TicFamily::Retrieval,
            "datacompnet" => TicFamily::Datacompnet,
            f => bail!("TiC key {key:?}: unknown family {f:?} (retrieval or datacompnet)"),
        };
        let timescale = match timescale {
            "yearly" => Timescale::Yearly,
            "monthly" => Timescale::Monthly,
            t => bail!("TiC key {key:?}: unknown timescale {t:?} (yearly or monthly)"),
        };
        // `YYYY`, or a range `YYYY-YYYY` (TiC-YFCC15M's year groups); monthly alike.
        if Timescale::of_split(split) != Some(timescale) {
            bail!(
                "TiC key {key:?}: split {split:?} is not a {}-digit {} time or a range A-B of those",
                timescale.digits(),
                timescale.as_str()
            );
        }
        Ok(TaskKey::Tic(TicTask {
            dataset: ds.to_string(),
            family,
            timescale,
            split: split.to_string(),
        }))
    }

    /// Where the task's WebDataset lives and its split: TiC keys as in TiC's `datacomp.patch`
    /// (`split` empty), others as DataComp's `wds_eval.create_webdataset` (`split` = `test`):
    /// `wds_{key with / → -}_test`, except that DataComp's fairness evaluators pass the key
    /// without its `fairness/` prefix (`fairness/geode` → `wds_geode_test`), as
    /// `download_evalsets.py` names those folders.
    pub fn data_location(&self, data_dir: &Path) -> (PathBuf, &'static str) {
        match self {
            TaskKey::Tic(t) => (t.data_path(data_dir), ""),
            TaskKey::Static(k) => {
                let k = k.strip_prefix("fairness/").unwrap_or(k);
                (
                    data_dir.join(format!("wds_{}_test", k.replace('/', "-"))),
                    DATACOMP_SPLIT,
                )
            }
        }
    }

    /// `retrieval` or `classification`, for messages.
    pub fn kind_name(&self) -> &'static str {
        if self.is_retrieval() {
            "retrieval"
        } else {
            "classification"
        }
    }

    /// Whether the task is a retrieval task (else zero-shot classification): a TiC retrieval
    /// key, or a DataComp key under `retrieval/`.
    pub fn is_retrieval(&self) -> bool {
        match self {
            TaskKey::Tic(t) => t.family == TicFamily::Retrieval,
            TaskKey::Static(k) => k.starts_with("retrieval/"),
        }
    }
}

/// The key as written in a task list (what [`TaskKey::parse`] read).
impl fmt::Display for TaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskKey::Tic(t) => t.fmt(f),
            TaskKey::Static(k) => f.write_str(k),
        }
    }
}

/// A point or span in time: `YYYY`, `YYYYMM`, or a range `A-B` of those (e.g. `2014-2016`,
/// the first TiC-DataComp training step). Ordered by its end, then its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TimeLabel {
    /// First month covered, as `year * 12 + (month - 1)`.
    pub start: u32,
    /// Last month covered, as `year * 12 + (month - 1)`.
    pub end: u32,
}

impl TimeLabel {
    /// Parses `YYYY`, `YYYYMM` or `A-B`.
    pub fn parse(s: &str) -> Result<Self> {
        if let Some((a, b)) = s.split_once('-') {
            let (a, b) = (Self::parse(a)?, Self::parse(b)?);
            if b.end < a.start {
                bail!("time range {s:?} ends before it starts");
            }
            return Ok(Self {
                start: a.start,
                end: b.end,
            });
        }
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            bail!("{s:?} is not a time (YYYY, YYYYMM or YYYY-YYYY)");
        }
        match s.len() {
            4 => {
                let y: u32 = s.parse()?;
                Ok(Self {
                    start: y * 12,
                    end: y * 12 + 11,
                })
            }
            6 => {
                let y: u32 = s[..4].parse()?;
                let m: u32 = s[4..].parse()?;
                if !(1..=12).contains(&m) {
                    bail!("{s:?}: month {m} is not 1..12");
                }
                let v = y * 12 + m - 1;
                Ok(Self { start: v, end: v })
            }
            _ => bail!("{s:?} is not a time (YYYY, YYYYMM or YYYY-YYYY)"),
        }
    }
}

impl PartialOrd for TimeLabel {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for TimeLabel {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.end, self.start).cmp(&(other.end, other.start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tic_keys_resolve_to_the_patched_data_path() {
        let k = TaskKey::parse("tic/datacomp/retrieval/yearly/2014").unwrap();
        let (p, split) = k.data_location(Path::new("/data"));
        assert_eq!(
            p,
            Path::new("/data/tic/datacomp/yearly/eval/retrieval/2014")
        );
        assert_eq!(split, "");
        assert!(k.is_retrieval());
        let k = TaskKey::parse("tic/redcaps/datacompnet/monthly/201712").unwrap();
        assert_eq!(
            k.data_location(Path::new("d")).0,
            Path::new("d/tic/redcaps/monthly/eval/datacompnet/201712")
        );
        // TiC-YFCC15M's year groups.
        let k = TaskKey::parse("tic/yfcc15m/retrieval/yearly/2004-2008").unwrap();
        assert_eq!(
            k.data_location(Path::new("d")).0,
            Path::new("d/tic/yfcc15m/yearly/eval/retrieval/2004-2008")
        );
        match &k {
            TaskKey::Tic(t) => assert_eq!(t.time(), TimeLabel::parse("2004-2008").unwrap()),
            TaskKey::Static(_) => panic!("a TiC key"),
        }
        let k = TaskKey::parse("vtab/cifar100").unwrap();
        assert_eq!(
            k.data_location(Path::new("d")),
            (PathBuf::from("d/wds_vtab-cifar100_test"), "test")
        );
        // download_evalsets.py names the fairness sets without their prefix.
        let k = TaskKey::parse("fairness/dollar_street").unwrap();
        assert_eq!(
            k.data_location(Path::new("d")).0,
            PathBuf::from("d/wds_dollar_street_test")
        );
        let k = TaskKey::parse("wilds/iwildcam").unwrap();
        assert_eq!(
            k.data_location(Path::new("d")).0,
            PathBuf::from("d/wds_wilds-iwildcam_test")
        );
        for bad in [
            "tic/datacomp/retrieval/yearly",
            "tic/laion/retrieval/yearly/2014",
            "tic/datacomp/vqa/yearly/2014",
            "tic/datacomp/retrieval/daily/2014",
            "tic/datacomp/retrieval/yearly/201403",
            "tic/datacomp/retrieval/monthly/201413",
            "tic/yfcc15m/retrieval/yearly/2008-2004",
            "tic/yfcc15m/retrieval/yearly/2004-200806",
            "tic/yfcc15m/retrieval/yearly/2004-2006-2008",
            "tic/yfcc15m/retrieval/yearly/2004-",
        ] {
            assert!(TaskKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_display_as_parsed() {
        for key in [
            "tic/datacomp/retrieval/yearly/2014",
            "tic/redcaps/datacompnet/monthly/201712",
            "tic/yfcc15m/retrieval/yearly/2004-2008",
            "imagenet1k",
            "retrieval/flickr30k",
        ] {
            assert_eq!(TaskKey::parse(key).unwrap().to_string(), key);
        }
        let e = TaskKey::parse("tic/datacomp/retrieval/monthly/2014").unwrap_err();
        assert_eq!(
            e.to_string(),
            "TiC key \"tic/datacomp/retrieval/monthly/2014\": split \"2014\" is not a 6-digit \
             monthly time or a range A-B of those"
        );
    }

    #[test]
    fn splits_name_their_timescale() {
        for (split, want) in [
            ("2014", Some(Timescale::Yearly)),
            ("2004-2008", Some(Timescale::Yearly)),
            ("201403", Some(Timescale::Monthly)),
            ("201401-201406", Some(Timescale::Monthly)),
            ("201413", None),
            ("2010-2009", None),
            ("2014-201403", None),
            ("2004-2006-2008", None),
            ("2014-", None),
            ("", None),
            ("x.npy", None),
        ] {
            assert_eq!(Timescale::of_split(split), want, "{split:?}");
        }
    }

    #[test]
    fn time_labels_order_by_end() {
        let y14 = TimeLabel::parse("2014").unwrap();
        let m1403 = TimeLabel::parse("201403").unwrap();
        let first = TimeLabel::parse("2014-2016").unwrap();
        let y16 = TimeLabel::parse("2016").unwrap();
        assert!(m1403 < y14 && y14 < y16);
        assert_eq!(first.end, y16.end);
        assert!(first < y16); // same end, earlier start
        assert!(TimeLabel::parse("20x4").is_err());
        assert!(TimeLabel::parse("2016-2014").is_err());
    }
}
