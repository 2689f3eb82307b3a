//! Markdown, CSV and JSON renderings of a [`Report`].
//!
//! * `summary.md`: per family, one row per run: ID, backward, forward, cells, then the
//!   static tasks (with how many entered the static average) and compute; DataComp's
//!   aggregates where a run's static tasks are DataComp's suite; then every run's T×T matrix.
//! * `summary.csv`: one row per (run, family) with the same columns (long format).
//! * `matrix_{family}_{run}.csv`: the T×T matrix (rows: train step, columns: eval step);
//!   `raw_{family}_{run}.csv`: rows: the run's train times, columns: every eval time.
//! * `steps.csv`: one row per (run, model): compute and per-step numbers.
//! * `report.json`: the whole [`Report`].
//!
//! The Markdown helpers ([`markdown_table`], [`matrix_markdown`], [`percent`],
//! [`human_count`]) are shared with `tic-report` ([`crate::report`]).

use crate::aggregate::{Aggregate, AggregateScore};
use crate::dynamic::{FamilyMatrix, Report, RunReport, StaticSummary};
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Formats an optional value with 4 decimals (`–` when missing).
pub fn fixed4(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), |v| format!("{v:.4}"))
}

/// Formats an optional fraction as a percentage with 1 decimal, without the `%` sign
/// (`0.4567` → `45.7`; `–` when missing).
pub fn percent(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), |v| format!("{:.1}", 100.0 * v))
}

/// A count in short human form: `960`, `15.4k`, `18.4M`, `1.8B` (`–` when missing or not
/// finite).
pub fn human_count(v: Option<f64>) -> String {
    let Some(v) = v.filter(|v| v.is_finite()) else {
        return "–".to_string();
    };
    if v.abs() < 999.5 {
        return format!("{v:.0}");
    }
    let units = [(1e3, "k"), (1e6, "M"), (1e9, "B"), (1e12, "T")];
    for (i, (div, suffix)) in units.iter().enumerate() {
        let scaled = v / div;
        // Rounds to 1000.0 of this unit: use the next one (999,960 → 1.0M, not 1000.0k).
        if scaled.abs() < 999.95 || i == units.len() - 1 {
            return format!("{scaled:.1}{suffix}");
        }
    }
    unreachable!("the last unit always returns")
}

/// Column alignment in a [`markdown_table`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// `---`
    Left,
    /// `---:`
    Right,
}

/// A Markdown (GitHub) table: `| h1 | h2 |`, the alignment row, then one line per row.
pub fn markdown_table(header: &[&str], align: &[Align], rows: &[Vec<String>]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "| {} |", header.join(" | "));
    let seps: Vec<&str> = (0..header.len())
        .map(|i| match align.get(i).copied().unwrap_or(Align::Left) {
            Align::Left => "---",
            Align::Right => "---:",
        })
        .collect();
    let _ = writeln!(s, "| {} |", seps.join(" | "));
    for r in rows {
        let _ = writeln!(s, "| {} |", r.join(" | "));
    }
    s
}

const R: Align = Align::Right;

/// Formats an optional value for CSV (empty when missing, full precision).
fn csv_cell(v: Option<f64>) -> String {
    v.map_or_else(String::new, |v| v.to_string())
}

/// Formats a large count in scientific notation (`–` when missing).
fn sci(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), |v| format!("{v:.3e}"))
}

/// A file-name-safe version of a run name.
pub fn slug(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The Markdown summary.
pub fn markdown(report: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# TiC dynamic evaluation\n");
    let _ = writeln!(s, "Training steps: {}\n", report.steps.join(", "));
    for (fi, fam) in report.families.iter().enumerate() {
        let metric = report.runs[0].matrices[fi].metric.clone();
        let _ = writeln!(
            s,
            "## {} {} ({}, {})\n",
            fam.dataset,
            fam.family,
            fam.timescale.as_str(),
            metric
        );
        let rows: Vec<Vec<String>> = report
            .runs
            .iter()
            .map(|run| {
                let sm = &run.matrices[fi].summary;
                let t = report.steps.len();
                vec![
                    run.name.clone(),
                    fixed4(sm.id),
                    fixed4(sm.backward),
                    fixed4(sm.forward),
                    format!(
                        "{}/{}{}",
                        sm.cells,
                        t * t,
                        if sm.complete { "" } else { " *" }
                    ),
                ]
            })
            .collect();
        s.push_str(&markdown_table(
            &["Method", "ID", "Backward", "Forward", "Cells"],
            &[Align::Left, R, R, R, R],
            &rows,
        ));
        let _ = writeln!(s);
    }
    if report.families.is_empty() {
        let _ = writeln!(s, "No `tic/...` task results found.\n");
    }
    let _ = writeln!(s, "## Static tasks (last model) and compute\n");
    let rows: Vec<Vec<String>> = report
        .runs
        .iter()
        .map(|run| {
            let st = &run.static_tasks;
            let last = run.per_step.last();
            vec![
                run.name.clone(),
                st.time.as_deref().unwrap_or("–").to_string(),
                fixed4(st.imagenet),
                fixed4(st.imagenet_and_shifts),
                fixed4(st.average),
                static_task_count(st),
                sci(last.and_then(|p| p.cumulative_samples)),
                sci(last.and_then(|p| p.cumulative_macs)),
            ]
        })
        .collect();
    s.push_str(&markdown_table(
        &[
            "Method",
            "Last model",
            "ImageNet",
            "ImageNet + shifts",
            "Static avg",
            "Static tasks",
            "Samples seen",
            "MACs",
        ],
        &[Align::Left, Align::Left, R, R, R, R, R, R],
        &rows,
    ));
    let _ = writeln!(s);
    if report
        .runs
        .iter()
        .any(|r| r.matrices.iter().any(|m| !m.summary.complete))
    {
        let _ = writeln!(
            s,
            "`*` incomplete matrix: means are over the cells present (e.g. a run trained once, or missing evaluations).\n"
        );
    }
    s.push_str(&datacomp_markdown(report));
    let _ = writeln!(s, "## Matrices\n");
    let _ = writeln!(s, "Rows: training step; columns: evaluation step.\n");
    for run in &report.runs {
        for fm in &run.matrices {
            let _ = writeln!(s, "### {} — {} ({})\n", run.name, fm.family.id(), fm.metric);
            s.push_str(&matrix_markdown(&report.steps, fm, fixed4));
            let _ = writeln!(s);
        }
    }
    s
}

/// How many static tasks entered the static average: `38`, or `38/40` when some static tasks
/// have a `null` main metric (they are not averaged).
pub fn static_task_count(st: &StaticSummary) -> String {
    let (n, total) = (st.averaged_tasks(), st.tasks.len());
    if n == total {
        n.to_string()
    } else {
        format!("{n}/{total}")
    }
}

/// A DataComp aggregate's cell: the mean as `value` formats it, then how many of the
/// aggregate's tasks entered it, `0.5123 (12/13)`.
pub fn with_task_count(value: String, score: &AggregateScore) -> String {
    format!("{value} ({}/{})", score.tasks, score.of)
}

/// The header of a DataComp aggregates table: `Method`, then the five aggregates.
pub fn datacomp_header() -> Vec<&'static str> {
    std::iter::once("Method")
        .chain(Aggregate::ALL.iter().map(|a| a.label()))
        .collect()
}

/// What the task counts of a DataComp aggregates table mean.
pub const DATACOMP_NOTE: &str = "DataComp's aggregates (`aggregate_scores.py`, as \
    `tic-aggregate` prints them) of the last model's static tasks, for each method evaluated on \
    DataComp's suite; `(n/m)`: n of the aggregate's m main metrics entered the mean (the others \
    are `null` in the results).";

/// DataComp's aggregates of each run whose static tasks are DataComp's suite, as a Markdown
/// section (empty when no run's are).
fn datacomp_markdown(report: &Report) -> String {
    let rows: Vec<Vec<String>> = report
        .runs
        .iter()
        .filter_map(|run| {
            let suite = run.static_tasks.datacomp()?;
            let cells = suite
                .scores()
                .into_iter()
                .map(|sc| with_task_count(fixed4(sc.mean), &sc));
            Some(std::iter::once(run.name.clone()).chain(cells).collect())
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut s = String::from("## DataComp aggregates (last model)\n\n");
    s.push_str(&markdown_table(
        &datacomp_header(),
        &[Align::Left, R, R, R, R, R],
        &rows,
    ));
    let _ = writeln!(s, "\n{DATACOMP_NOTE}\n");
    s
}

/// The T×T matrix of `fm` as a Markdown table (rows: training step, columns: evaluation
/// step), each cell formatted with `fmt` (e.g. [`fixed4`] or [`percent`]).
pub fn matrix_markdown(
    steps: &[String],
    fm: &FamilyMatrix,
    fmt: impl Fn(Option<f64>) -> String,
) -> String {
    let mut header = vec!["train \\ eval"];
    header.extend(steps.iter().map(String::as_str));
    let mut align = vec![Align::Left];
    align.extend(std::iter::repeat_n(R, steps.len()));
    let rows = labelled_rows(steps, &fm.matrix, fmt);
    markdown_table(&header, &align, &rows)
}

/// One row per `(label, values)` pair: the label, then each value formatted with `fmt`.
fn labelled_rows(
    labels: &[String],
    values: &[Vec<Option<f64>>],
    fmt: impl Fn(Option<f64>) -> String,
) -> Vec<Vec<String>> {
    values
        .iter()
        .zip(labels)
        .map(|(row, label)| {
            std::iter::once(label.clone())
                .chain(row.iter().map(|v| fmt(*v)))
                .collect()
        })
        .collect()
}

fn write_csv(path: &Path, header: &[String], rows: &[Vec<String>]) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header)?;
    for r in rows {
        w.write_record(r)?;
    }
    let bytes = w.into_inner().context("flushing CSV")?;
    crate::write_output(path, &bytes)
}

/// Columns of `summary.csv`.
const SUMMARY_COLUMNS: [&str; 16] = [
    "method",
    "dataset",
    "family",
    "timescale",
    "metric",
    "id",
    "backward",
    "forward",
    "cells",
    "complete",
    "last_model",
    "imagenet",
    "imagenet_and_shifts",
    "static_average",
    "cumulative_samples",
    "cumulative_macs",
];

/// The rows of `summary.csv` for `run`: one per family (a run without families gets one row
/// with the family columns empty), each ending with the static-task and compute columns.
fn summary_rows(run: &RunReport) -> Vec<Vec<String>> {
    let st = &run.static_tasks;
    let last = run.per_step.last();
    let tail = [
        st.time.clone().unwrap_or_default(),
        csv_cell(st.imagenet),
        csv_cell(st.imagenet_and_shifts),
        csv_cell(st.average),
        csv_cell(last.and_then(|p| p.cumulative_samples)),
        csv_cell(last.and_then(|p| p.cumulative_macs)),
    ];
    let mut rows = Vec::new();
    if run.matrices.is_empty() {
        let mut r = vec![run.name.clone()];
        r.extend(std::iter::repeat_n(String::new(), 9));
        r.extend(tail.iter().cloned());
        rows.push(r);
    }
    for fm in &run.matrices {
        let mut r = vec![
            run.name.clone(),
            fm.family.dataset.clone(),
            fm.family.family.to_string(),
            fm.family.timescale.as_str().to_string(),
            fm.metric.clone(),
            csv_cell(fm.summary.id),
            csv_cell(fm.summary.backward),
            csv_cell(fm.summary.forward),
            fm.summary.cells.to_string(),
            fm.summary.complete.to_string(),
        ];
        r.extend(tail.iter().cloned());
        rows.push(r);
    }
    rows
}

/// `steps.csv`'s header and rows: one row per (run, model).
fn step_table(report: &Report) -> (Vec<String>, Vec<Vec<String>>) {
    let mut rows = Vec::new();
    for run in &report.runs {
        for pt in &run.per_step {
            let mut r = vec![
                run.name.clone(),
                pt.time.clone(),
                csv_cell(pt.samples_seen),
                csv_cell(pt.cumulative_samples),
                csv_cell(pt.cumulative_macs),
                csv_cell(pt.imagenet),
                csv_cell(pt.imagenet_and_shifts),
            ];
            r.extend(pt.seen_so_far.iter().map(|v| csv_cell(*v)));
            rows.push(r);
        }
    }
    let mut header: Vec<String> = [
        "method",
        "time",
        "samples_seen",
        "cumulative_samples",
        "cumulative_macs",
        "imagenet",
        "imagenet_and_shifts",
    ]
    .map(String::from)
    .to_vec();
    header.extend(
        report
            .families
            .iter()
            .map(|f| format!("seen_so_far_{}", f.id())),
    );
    (header, rows)
}

/// Writes a matrix as CSV: header `train` + `columns`, one row per label (its values full
/// precision, empty when missing).
fn write_matrix_csv(
    path: &Path,
    columns: &[String],
    labels: &[String],
    values: &[Vec<Option<f64>>],
) -> Result<()> {
    let mut header = vec!["train".to_string()];
    header.extend(columns.iter().cloned());
    write_csv(path, &header, &labelled_rows(labels, values, csv_cell))
}

/// The whole [`Report`] as JSON, in a `tic-metrics` output folder (what `tic-report` reads).
pub const REPORT_FILE: &str = "report.json";

/// Writes every table into `dir`: `summary.md`, `report.json`, `summary.csv`, `steps.csv`, then
/// each run's `matrix_*.csv` and `raw_*.csv`; returns the paths written.
pub fn write_all(report: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let md = dir.join("summary.md");
    crate::write_output(&md, markdown(report).as_bytes())?;
    written.push(md);

    let json = dir.join(REPORT_FILE);
    crate::write_output(&json, serde_json::to_string_pretty(report)?.as_bytes())?;
    written.push(json);

    let header = SUMMARY_COLUMNS.map(String::from).to_vec();
    let rows: Vec<Vec<String>> = report.runs.iter().flat_map(summary_rows).collect();
    let p = dir.join("summary.csv");
    write_csv(&p, &header, &rows)?;
    written.push(p);

    let (header, step_rows) = step_table(report);
    let p = dir.join("steps.csv");
    write_csv(&p, &header, &step_rows)?;
    written.push(p);

    for run in &report.runs {
        for fm in &run.matrices {
            let (family, run_id) = (fm.family.id(), slug(&run.name));
            let p = dir.join(format!("matrix_{family}_{run_id}.csv"));
            write_matrix_csv(&p, &report.steps, &report.steps, &fm.matrix)?;
            written.push(p);
            let p = dir.join(format!("raw_{family}_{run_id}.csv"));
            write_matrix_csv(&p, &fm.eval_times, &run.train_times, &fm.raw)?;
            written.push(p);
        }
    }
    Ok(written)
}
