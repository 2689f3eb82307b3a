//! DataComp's fairness tables (`eval_utils/fairness_tables.py` at 7fdb5c6): Tables 3–6 of the
//! DataComp paper from a FairFace or UTKFace record of `eval_results.jsonl` (the fields
//! `tic_eval::metrics::fairface` records), for tic-report.
//!
//! The script prints three pandas tables, every accuracy as `f"{100 * frac:.1f}"`:
//!
//! * Table 3+4: `acc_{race,gender,age}_{race_binary:0, race_binary:1, avg}` as rows white,
//!   non-white, overall and columns race, gender, age;
//! * Table 5: `acc_gender_x_race:{r}_gender:{g}`, rows male / female, one column per race;
//! * Table 6: `toxicity_{crime,nonhuman}_race:{r}`, rows crime-related / non-human.
//!
//! Races are the script's lists: FairFace's seven, UTKFace's five. [`script_output`] gives the
//! script's stdout byte for byte (pandas' `to_string` layout, `NaN` for an empty group, `N/A`
//! without a record), which the tests compare with the real script's; [`FairnessTable::markdown`]
//! is the same cells as a Markdown table for the report. Why a module of its own: the report
//! shows these only for models evaluated on the two sets, and the layout is the script's, not
//! tic-analysis' own tables'.

use crate::tables::{markdown_table, percent, Align};
use anyhow::{bail, Result};
use serde_json::{Map, Value};

/// The task keys with fairness tables, with the races of their columns (the script's `RACES`).
pub const FAIRNESS_TABLE_RACES: [(&str, &[&str]); 2] = [
    (
        "fairness/fairface",
        &[
            "black",
            "white",
            "indian",
            "latino",
            "middle eastern",
            "southeast asian",
            "east asian",
        ],
    ),
    (
        "fairness/utkface",
        &["black", "white", "indian", "asian", "other"],
    ),
];

/// The races of `key`'s tables, if it has any.
pub fn races(key: &str) -> Option<&'static [&'static str]> {
    FAIRNESS_TABLE_RACES
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, r)| *r)
}

/// One of the script's tables: a title, row and column labels, and the fractions of the cells
/// (`None`: `NaN` in the record, read back as `null`).
#[derive(Debug, Clone, PartialEq)]
pub struct FairnessTable {
    /// `Table 3+4`, `Table 5` or `Table 6`.
    pub title: &'static str,
    /// Row labels.
    pub index: Vec<String>,
    /// Column labels.
    pub columns: Vec<String>,
    /// `cells[row][column]`, fractions in [0, 1].
    pub cells: Vec<Vec<Option<f64>>>,
}

/// A fraction as the script prints it: `f"{100 * frac:.1f}"`, or pandas' `NaN`.
pub fn percent_cell(frac: Option<f64>) -> String {
    match frac {
        Some(f) if !f.is_nan() => percent(Some(f)), // the script's f"{100 * frac:.1f}"
        _ => "NaN".to_string(),
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The three tables of `key`'s record `metrics`. A field the script reads that is missing (it
/// would stop with a `KeyError`) or not a number or `null` is an error naming it.
pub fn tables(key: &str, metrics: &Map<String, Value>) -> Result<Vec<FairnessTable>> {
    let Some(races) = races(key) else {
        bail!("{key}: no fairness tables (only {FAIRNESS_TABLE_RACES:?})");
    };
    let field = |name: String| -> Result<Option<f64>> {
        match metrics.get(&name) {
            Some(Value::Null) => Ok(None),
            Some(v) => match v.as_f64() {
                Some(x) => Ok(Some(x)),
                None => bail!("{key}: field {name} is {v}, not a number"),
            },
            None => bail!("{key}: the record has no field {name} (fairness_tables.py needs it)"),
        }
    };
    let objectives = ["race", "gender", "age"];
    let groups = ["race_binary:0", "race_binary:1", "avg"];
    let t34 = groups
        .iter()
        .map(|g| {
            objectives
                .iter()
                .map(|o| field(format!("acc_{o}_{g}")))
                .collect()
        })
        .collect::<Result<_>>()?;
    let t5 = (0..2)
        .map(|g| {
            (0..races.len())
                .map(|r| field(format!("acc_gender_x_race:{r}_gender:{g}")))
                .collect()
        })
        .collect::<Result<_>>()?;
    let t6 = ["crime", "nonhuman"]
        .iter()
        .map(|t| {
            (0..races.len())
                .map(|r| field(format!("toxicity_{t}_race:{r}")))
                .collect()
        })
        .collect::<Result<_>>()?;
    Ok(vec![
        FairnessTable {
            title: "Table 3+4",
            index: strings(&["white", "non-white", "overall"]),
            columns: strings(&objectives),
            cells: t34,
        },
        FairnessTable {
            title: "Table 5",
            index: strings(&["male", "female"]),
            columns: strings(races),
            cells: t5,
        },
        FairnessTable {
            title: "Table 6",
            index: strings(&["crime-related", "non-human"]),
            columns: strings(races),
            cells: t6,
        },
    ])
}

impl FairnessTable {
    /// pandas' `DataFrame.to_string(float_format=…)` of the table: the index left-justified,
    /// each float column right-justified to the widest of its cells and its header with
    /// pandas' leading space (`" " + name`), columns joined by one space.
    pub fn pandas_text(&self) -> String {
        let index_width = self.index.iter().map(String::len).max().unwrap_or(0);
        let mut columns: Vec<Vec<String>> = Vec::new();
        for (j, name) in self.columns.iter().enumerate() {
            let mut col = vec![format!(" {name}")];
            col.extend(self.cells.iter().map(|row| percent_cell(row[j])));
            let w = col.iter().map(String::len).max().unwrap_or(0);
            columns.push(col.iter().map(|c| format!("{c:>w$}")).collect());
        }
        let header = std::iter::once(" ".repeat(index_width))
            .chain(columns.iter().map(|c| c[0].clone()))
            .collect::<Vec<_>>()
            .join(" ");
        let rows = self.index.iter().enumerate().map(|(i, label)| {
            std::iter::once(format!("{label:<index_width$}"))
                .chain(columns.iter().map(|c| c[i + 1].clone()))
                .collect::<Vec<_>>()
                .join(" ")
        });
        std::iter::once(header)
            .chain(rows)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The same cells as a Markdown table (first column the row labels).
    pub fn markdown(&self) -> String {
        let header: Vec<&str> = std::iter::once("")
            .chain(self.columns.iter().map(String::as_str))
            .collect();
        let mut align = vec![Align::Right; header.len()];
        align[0] = Align::Left;
        let rows: Vec<Vec<String>> = self
            .index
            .iter()
            .zip(&self.cells)
            .map(|(label, row)| {
                std::iter::once(label.clone())
                    .chain(row.iter().map(|&c| percent_cell(c)))
                    .collect()
            })
            .collect();
        markdown_table(&header, &align, &rows)
    }
}

/// What `fairness_tables.py RESULTS --dataset KEY` prints for the record `metrics` of `key`
/// (`None`: the file has none, the script prints `N/A`).
pub fn script_output(key: &str, metrics: Option<&Map<String, Value>>) -> Result<String> {
    let Some(metrics) = metrics else {
        return Ok("N/A\n".to_string());
    };
    let parts: Vec<String> = tables(key, metrics)?
        .iter()
        .map(|t| format!("# {}\n{}\n", t.title, t.pandas_text()))
        .collect();
    Ok(parts.join("\n"))
}

/// A model's FairFace / UTKFace records: task key → metrics (`StaticSummary::fairness`).
pub type FairnessRecords = std::collections::BTreeMap<String, Map<String, Value>>;

/// The report's fairness section: for each method whose last model has FairFace / UTKFace
/// records (`runs`: method name and its `StaticSummary::fairness`), the three tables of each
/// set as Markdown, in percent as the script prints them; empty when no method has one. A
/// record the tables cannot be made of is shown with the reason. `seeds` > 1 says the tables
/// are the first seed's.
pub fn report_section(runs: &[(&str, &FairnessRecords)], seeds: usize) -> String {
    use std::fmt::Write as _;
    if runs.iter().all(|(_, f)| f.is_empty()) {
        return String::new();
    }
    let mut s = String::from(
        "## Fairness (DataComp's Tables 3–6)

",
    );
    let which = if seeds > 1 { " of the first seed" } else { "" };
    let _ = writeln!(
        s,
        "Each method's last model{which} on FairFace / UTKFace, as DataComp's \
         `fairness_tables.py` prints them (accuracy in %; Table 6: share of faces classified as \
         crime-related or non-human, by race; `NaN`: no face of that group).\n"
    );
    for (name, records) in runs {
        for (key, metrics) in records.iter() {
            let _ = writeln!(s, "### {key} — {name}\n");
            match tables(key, metrics) {
                Ok(ts) => {
                    for t in ts {
                        let _ = writeln!(s, "{}\n\n{}", t.title, t.markdown());
                    }
                }
                Err(e) => {
                    let _ = writeln!(s, "No tables: {e:#}.\n");
                }
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_formatted_as_the_script_formats_them() {
        assert_eq!(percent_cell(Some(1.0)), "100.0");
        assert_eq!(percent_cell(Some(0.0005)), "0.1");
        assert_eq!(percent_cell(Some(0.12345)), "12.3");
        assert_eq!(percent_cell(None), "NaN");
        assert_eq!(percent_cell(Some(f64::NAN)), "NaN");
    }

    /// A UTKFace record with every field the script reads: `acc_*` 0.5, toxicity 0.25, race 3
    /// empty (`null`).
    fn utkface_metrics() -> Map<String, Value> {
        let mut m = Map::new();
        for o in ["race", "gender", "age"] {
            for g in ["race_binary:0", "race_binary:1", "avg"] {
                m.insert(format!("acc_{o}_{g}"), 0.5.into());
            }
        }
        for r in 0..5 {
            let v = |x: f64| if r == 3 { Value::Null } else { x.into() };
            for g in 0..2 {
                m.insert(format!("acc_gender_x_race:{r}_gender:{g}"), v(0.5));
            }
            for t in ["crime", "nonhuman"] {
                m.insert(format!("toxicity_{t}_race:{r}"), v(0.25));
            }
        }
        m
    }

    #[test]
    fn report_section_shows_each_methods_tables() {
        let none = std::collections::BTreeMap::new();
        assert_eq!(report_section(&[("oracle", &none)], 1), "");
        let mut recs = std::collections::BTreeMap::new();
        recs.insert("fairness/utkface".to_string(), utkface_metrics());
        let s = report_section(&[("oracle", &none), ("sequential", &recs)], 1);
        assert!(s.starts_with("## Fairness"), "{s}");
        assert!(s.contains("### fairness/utkface — sequential"), "{s}");
        assert!(!s.contains("oracle"), "{s}");
        assert!(s.contains("| non-human "), "{s}");
        assert!(s.contains("| 25.0 |") && s.contains("| NaN |"), "{s}");
        recs.get_mut("fairness/utkface")
            .unwrap()
            .remove("acc_age_avg");
        let s = report_section(&[("sequential", &recs)], 2);
        assert!(
            s.contains("first seed") && s.contains("no field acc_age_avg"),
            "{s}"
        );
    }

    #[test]
    fn missing_fields_are_named() {
        let err = tables("fairness/utkface", &Map::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("acc_race_race_binary:0"), "{err}");
        assert!(tables("imagenet1k", &Map::new()).is_err());
    }
}
