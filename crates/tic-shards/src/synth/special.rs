//! Synthetic stand-ins for DataComp's special evaluation tasks (`tic-synth --special-samples N`),
//! so that `make demo` runs tic-eval's real dispatch for them: the WILDS / Dollar Street /
//! GeoDE group evaluators and the multi-label FairFace evaluation.
//!
//! Why synthetic: the real sets come from DataComp's eval download (gigabytes, a network), and
//! the demo runs offline in minutes. Each set is written as `download_evalsets.py` names it
//! (`OUT/special/wds_wilds-fmow_test`, `wds_dollar_street_test`, `wds_geode_test`,
//! `wds_fairface_test`, the fairness sets without their prefix), with DataComp's task keys and
//! each sample's `npy` metadata in the positions its evaluator reads. The metadata is derived
//! from what the image shows, so the groups mean something — an accuracy per group is the
//! model's accuracy on one kind of rendering:
//!
//! | set | metadata | derived from |
//! | --- | --- | --- |
//! | `wilds/fmow` | `[region, year, y]` | region = colour index mod 6 (region 5, FMoW's "Other", is orange), year = the rendering's year index, y = concept |
//! | `fairness/dollar_street` | `[income_ds, income_meta, region]` | income group = 2·small + dark background (0 large/light … 3 small/dark), region = position row |
//! | `fairness/geode` | `[region, country]` | region = position row (top, middle, bottom), country = position (0..9) |
//! | `fairness/fairface` | `[age, gender, race, race_binary]` | age = position (9 groups, as FairFace's 9 ages), gender = size (0 large, 1 small), race = colour ([`RACE_COLORS`]), race_binary = race ≠ 1 |
//!
//! The three classification sets use the static set's 16 concept names and ImageNet's
//! templates (the same prompts, so tic-eval embeds them once per model). The FairFace-style set
//! has no `cls`: its `classnames.txt` / templates are `objective:text` lines for DataComp's
//! four predicted labels — race (7 colour names, class 1 is "white", DataComp's white class),
//! gender (`large`, `small`), age (the 9 positions), toxic (the 16 concepts, then 4 ImageNet
//! classes never drawn: toxic classes 14–17 count as "non-human" and 18–19 as "crime-related"
//! in DataComp's thresholds, so a good model scores low on both). Every set is balanced over
//! the 16 concepts; the FairFace-style one also cycles its 7 races, so every race group exists.
//! Task names say "Synthetic … (DataComp's X evaluator)" so no one takes them for the real sets.

use super::{
    balanced_spec, concept_classnames, encode_jpeg, imagenet_templates, render, write_eval_set,
    SampleSpec, SetSample, SynthArgs, COLORS, CONCEPT_CLASSES, POSITIONS,
};
use crate::evalset_layout::DatasetType;
use crate::imagenet;
use anyhow::Result;
use rayon::prelude::*;
use std::fmt::Write as _;
use std::path::Path;

/// The folder under tic-synth's `--out` that holds the special sets (`OUT/special/wds_*_test`).
pub const SPECIAL_DIR: &str = "special";

/// Which of DataComp's evaluators a special set feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evaluator {
    /// WILDS FMoW (`metadata [region, year, y]`, main metric `acc_worst_region`).
    Fmow,
    /// Dollar Street (`[income_ds, income_meta, region]`, top-5 by income group).
    DollarStreet,
    /// GeoDE (`[region, country]`, worst region).
    Geode,
    /// FairFace (multi-label, `[age, gender, race, race_binary]`, no main metric).
    FairFace,
}

/// One special task: where its set goes and how `tasklist.yml` lists it.
#[derive(Debug, Clone, Copy)]
pub struct SpecialTask {
    /// DataComp's task key (`wilds/fmow`).
    pub key: &'static str,
    /// The set's folder, as `download_evalsets.py` names it (`wds_wilds-fmow_test`).
    pub folder: &'static str,
    /// The record's `dataset` name.
    pub name: &'static str,
    /// DataComp's main metric (`None`: `main_metric: null`, FairFace).
    pub main_metric: Option<&'static str>,
    /// The evaluator.
    pub evaluator: Evaluator,
    /// Salt of the set's random stream (each set draws its own samples).
    salt: u64,
}

/// The special tasks tic-synth writes, in task-list order (the three classification sets
/// first, after `synth_static`, which shares their prompts).
pub const SPECIAL_TASKS: [SpecialTask; 4] = [
    SpecialTask {
        key: "wilds/fmow",
        folder: "wds_wilds-fmow_test",
        name: "Synthetic FMoW (DataComp's wilds/fmow evaluator)",
        main_metric: Some("acc_worst_region"),
        evaluator: Evaluator::Fmow,
        salt: 0xF30A_0001,
    },
    SpecialTask {
        key: "fairness/dollar_street",
        folder: "wds_dollar_street_test",
        name: "Synthetic Dollar Street (DataComp's fairness/dollar_street evaluator)",
        main_metric: Some("acc_top5_wg"),
        evaluator: Evaluator::DollarStreet,
        salt: 0xD011_0002,
    },
    SpecialTask {
        key: "fairness/geode",
        folder: "wds_geode_test",
        name: "Synthetic GeoDE (DataComp's fairness/geode evaluator)",
        main_metric: Some("acc_wg"),
        evaluator: Evaluator::Geode,
        salt: 0x6E0D_0003,
    },
    SpecialTask {
        key: "fairness/fairface",
        folder: "wds_fairface_test",
        name: "Synthetic FairFace (DataComp's fairness/fairface evaluator)",
        main_metric: None,
        evaluator: Evaluator::FairFace,
        salt: 0xFACE_0004,
    },
];

/// The FairFace-style set's race classes: indices into the colours, race `r` drawn in colour
/// `RACE_COLORS[r]` (black, white, red, orange, yellow, green, blue; purple is not used).
/// Race 1 is white, the class DataComp's `acc_race` counts as "white".
pub const RACE_COLORS: [usize; 7] = [7, 6, 0, 5, 3, 1, 2];

/// ImageNet classes never drawn, appended to the toxic label's classes as classes 16–19.
const TOXIC_EXTRA_CLASSES: [usize; 4] = [0, 2, 3, 4];

/// `tasklist.yml` entries of the special tasks (sets of `samples` samples each), to follow
/// `synth_static` in the static task list.
pub fn tasklist_entries(samples: usize) -> String {
    let mut s = String::new();
    for t in SPECIAL_TASKS {
        let _ = write!(s, "{}:\n  name: \"{}\"\n  size: {samples}\n", t.key, t.name);
        match t.main_metric {
            Some(m) => {
                let _ = write!(
                    s,
                    "  num_classes: {}\n  main_metric: {m}\n",
                    CONCEPT_CLASSES.len()
                );
            }
            None => s.push_str("  main_metric: null\n"),
        }
        let family = t.key.split('/').next().unwrap_or(t.key);
        let _ = write!(s, "  tags:\n  - static\n  - synthetic\n  - {family}\n");
    }
    s
}

/// Writes every special set, `a.special_samples` samples each, under `dir`
/// (`dir/{folder}` per [`SPECIAL_TASKS`]).
pub fn write_special_sets(a: &SynthArgs, dir: &Path) -> Result<()> {
    let (classnames, templates) = (concept_classnames(), imagenet_templates());
    let (ff_classnames, ff_templates) = fairface_prompts();
    for t in SPECIAL_TASKS {
        let samples: Vec<SetSample> = (0..a.special_samples)
            .into_par_iter()
            .map(|i| -> Result<SetSample> {
                let s = sample_of(a, t, i);
                Ok(SetSample {
                    key: format!("s{i:07}"),
                    jpg: encode_jpeg(&render(a, &s), a.jpeg_quality)?,
                    cls: (t.evaluator != Evaluator::FairFace).then_some(s.concept),
                    npy: Some(metadata(a, t.evaluator, &s)),
                })
            })
            .collect::<Result<_>>()?;
        let (kind, classes) = match t.evaluator {
            Evaluator::FairFace => (DatasetType::Multilabel, (&ff_classnames, &ff_templates)),
            _ => (DatasetType::Classification, (&classnames, &templates)),
        };
        write_eval_set(&dir.join(t.folder), &samples, kind, (classes.0, classes.1))?;
    }
    Ok(())
}

/// Sample `i` of task `t`'s set: balanced over the concepts; the FairFace-style set also
/// cycles the races (the object's colour).
fn sample_of(a: &SynthArgs, t: SpecialTask, i: usize) -> SampleSpec {
    let mut s = balanced_spec(a, t.salt, i);
    if t.evaluator == Evaluator::FairFace {
        s.color = RACE_COLORS[i % RACE_COLORS.len()];
    }
    s
}

/// The `npy` metadata vector of sample `s` for `evaluator`, in the evaluator's field order.
pub fn metadata(a: &SynthArgs, evaluator: Evaluator, s: &SampleSpec) -> Vec<i64> {
    let year = i64::from(s.year - a.first_year);
    let position = s.position as i64;
    let row = position / 3;
    match evaluator {
        Evaluator::Fmow => vec![(s.color % 6) as i64, year, s.concept as i64],
        Evaluator::DollarStreet => {
            let income = 2 * i64::from(!s.large) + i64::from(s.dark);
            vec![income, income, row]
        }
        Evaluator::Geode => vec![row, position],
        Evaluator::FairFace => {
            let race = RACE_COLORS.iter().position(|&c| c == s.color).unwrap_or(0) as i64;
            vec![position, i64::from(!s.large), race, i64::from(race != 1)]
        }
    }
}

/// The FairFace-style set's `classnames.txt` and `zeroshot_classification_templates.txt`:
/// `objective:text` lines for race, gender, age and toxic (DataComp's `FF_PRED_LABELS`).
pub fn fairface_prompts() -> (String, String) {
    let names = imagenet::classnames();
    let mut classes = String::new();
    for &c in &RACE_COLORS {
        let _ = writeln!(classes, "race:{}", COLORS[c].0);
    }
    classes.push_str("gender:large\ngender:small\n");
    for (p, _, _) in POSITIONS {
        let _ = writeln!(classes, "age:{p}");
    }
    for &c in CONCEPT_CLASSES.iter().chain(&TOXIC_EXTRA_CLASSES) {
        let _ = writeln!(classes, "toxic:{}", names[c]);
    }
    let templates = "race:a photo of a {c} object.\ngender:a photo of a {c} object.\n\
                     age:a photo of an object in the {c}.\ntoxic:a photo of a {c}.\n"
        .to_string();
    (classes, templates)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wds::scan_shard;
    use clap::Parser;

    fn members(dir: &Path) -> Vec<std::collections::BTreeMap<String, Vec<u8>>> {
        let bytes = std::fs::read(dir.join("test/0.tar")).unwrap();
        let scan = scan_shard(&bytes, "0.tar");
        assert!(scan.errors.is_empty(), "{:?}", scan.errors);
        scan.samples
            .iter()
            .map(|r| {
                ["jpg", "cls", "npy"]
                    .iter()
                    .filter_map(|e| {
                        let m = r.member(e)?;
                        let (lo, hi) = (m.data_offset as usize, (m.data_offset + m.size) as usize);
                        Some((e.to_string(), bytes[lo..hi].to_vec()))
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn special_sets_carry_their_evaluators_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let a = SynthArgs::parse_from([
            "tic-synth",
            "--out",
            dir.path().to_str().unwrap(),
            "--special-samples",
            "28",
            "--image-size",
            "16",
        ]);
        write_special_sets(&a, dir.path()).unwrap();
        for t in SPECIAL_TASKS {
            let root = dir.path().join(t.folder);
            let samples = members(&root);
            assert_eq!(samples.len(), 28, "{}", t.key);
            let rows: Vec<Vec<i64>> = samples
                .iter()
                .map(|m| crate::npy::read_int_vector(&m["npy"], t.key).unwrap())
                .collect();
            let kind = std::fs::read_to_string(root.join("dataset_type.txt")).unwrap();
            match t.evaluator {
                Evaluator::FairFace => {
                    assert_eq!(kind, "multilabel\n");
                    assert!(samples.iter().all(|m| !m.contains_key("cls")));
                    for r in &rows {
                        assert_eq!(r.len(), 4);
                        assert!((0..9).contains(&r[0]) && (0..2).contains(&r[1]));
                        assert_eq!(r[3], i64::from(r[2] != 1));
                    }
                    // Every race, 0..7, occurs (the fairness tables need each group).
                    let races: std::collections::BTreeSet<i64> =
                        rows.iter().map(|r| r[2]).collect();
                    assert_eq!(races.len(), 7);
                }
                _ => {
                    assert_eq!(kind, "classification\n");
                    for (m, r) in samples.iter().zip(&rows) {
                        let cls: i64 = std::str::from_utf8(&m["cls"]).unwrap().parse().unwrap();
                        assert!((0..16).contains(&cls));
                        if t.evaluator == Evaluator::Fmow {
                            assert_eq!(r[2], cls, "FMoW's y is the class");
                            assert!((0..6).contains(&r[0]) && (0..4).contains(&r[1]));
                        }
                    }
                }
            }
        }
        // The FairFace prompts hold all four labels; toxic has 20 classes (crime from 18 on).
        let (classes, templates) = fairface_prompts();
        for (label, n) in [("race", 7), ("gender", 2), ("age", 9), ("toxic", 20)] {
            let count = classes
                .lines()
                .filter(|l| l.starts_with(&format!("{label}:")))
                .count();
            assert_eq!(count, n, "{label}");
            assert!(templates.contains(&format!("{label}:")), "{label}");
        }
        assert!(classes.contains("race:white\n") && classes.lines().nth(1) == Some("race:white"));
    }

    #[test]
    fn tasklist_entries_name_datacomps_keys_and_metrics() {
        let y = tasklist_entries(50);
        for t in SPECIAL_TASKS {
            assert!(
                y.contains(&format!("{}:\n  name: \"Synthetic ", t.key)),
                "{y}"
            );
        }
        assert!(y.contains("main_metric: acc_worst_region\n"), "{y}");
        assert!(y.contains("fairness/fairface:\n  name: \"Synthetic FairFace (DataComp's fairness/fairface evaluator)\"\n  size: 50\n  main_metric: null\n"), "{y}");
    }
}
