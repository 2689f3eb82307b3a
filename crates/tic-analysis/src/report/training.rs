//! The "Training runs" section: summaries of `tic-train`'s run folders (read through
//! [`crate::runs`]) and their training curves (loss, lr, samples/s, zero-shot top-1 per step,
//! one line per run), drawn next to the report so that a run can be read without TensorBoard.

use super::lookup::R;
use super::plots::{md_link_target, relative_link, Plot};
use crate::runs;
use crate::runs::{CURVES, CURVES_DIR};
use crate::tables::{human_count, markdown_table, Align};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Summary of one `tic-train` output folder (`{strategy}_{step}/`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrainingRun {
    /// Folder name (the real folder when others link to it).
    pub name: String,
    /// Other names (symlinks) of the same folder, sorted.
    pub shared_with: Vec<String>,
    /// Optimizer steps (`compute.json`, else lines of `metrics.jsonl`).
    pub steps: Option<u64>,
    /// Samples seen (`compute.json`).
    pub samples_seen: Option<f64>,
    /// Whether training finished (`compute.json`).
    pub finished: Option<bool>,
    /// Mean loss of the first 10 logged steps (fewer if fewer were logged).
    pub first_loss: Option<f64>,
    /// Mean loss of the last 10 logged steps.
    pub last_loss: Option<f64>,
    /// Sum of `step_s` (training seconds).
    pub train_seconds: Option<f64>,
    /// Mean of the per-step `samples_per_s`.
    pub mean_samples_per_s: Option<f64>,
    /// Loss, learning rate, throughput and zero-shot top-1 per step (plotted by
    /// [`crate::plots::training_curves`]).
    pub curves: runs::TrainingCurves,
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Summarizes one run folder (`compute.json`, `metrics.jsonl`; either may be missing).
pub fn summarize_training_run(name: &str, dir: &Path) -> Result<TrainingRun> {
    let mut run = TrainingRun {
        name: name.to_string(),
        ..Default::default()
    };
    if let Some(c) = runs::read_compute(dir)? {
        run.samples_seen = c.samples_seen.and_then(|n| n.as_f64());
        run.steps = c.steps;
        run.finished = c.finished;
    }
    let log = runs::read_step_log(dir)?;
    run.curves = runs::training_curves(dir, log.as_ref())?;
    if let Some(log) = log {
        let seconds: Vec<f64> = log.records.iter().filter_map(|r| r.step_s).collect();
        let losses: Vec<f64> = runs::applied_steps(&log)
            .filter_map(|r| runs::finite(r.loss))
            .collect();
        let rates: Vec<f64> = runs::applied_steps(&log)
            .filter_map(|r| runs::finite(r.samples_per_s))
            .collect();
        let k = losses.len().min(10);
        run.first_loss = mean(&losses[..k]);
        run.last_loss = mean(&losses[losses.len() - k..]);
        run.train_seconds = (!seconds.is_empty()).then(|| seconds.iter().sum());
        run.mean_samples_per_s = mean(&rates);
        if run.steps.is_none() {
            run.steps = Some(runs::logged_lines(&log) as u64);
        }
    }
    Ok(run)
}

/// Every training run under `runs_dir` (a folder with `compute.json` or `metrics.jsonl`),
/// in name order. Names that resolve to the same folder (`sequential_2014 -> init_2014`)
/// give one entry, named after the real folder, with the others in `shared_with`.
pub fn training_runs(runs_dir: &Path) -> Result<Vec<TrainingRun>> {
    let entries = std::fs::read_dir(runs_dir)
        .with_context(|| format!("reading runs directory {}", runs_dir.display()))?;
    let mut names = Vec::new();
    for e in entries {
        let e = e.with_context(|| format!("reading {}", runs_dir.display()))?;
        names.push(e.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    // canonical folder -> [(name, is_symlink)] in name order
    let mut groups: BTreeMap<PathBuf, Vec<(String, bool)>> = BTreeMap::new();
    for name in names {
        let path = runs_dir.join(&name);
        if !runs::is_training_run(&path) {
            tracing::debug!("{}: not a training run, skipped", path.display());
            continue;
        }
        let is_link = std::fs::symlink_metadata(&path)
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false);
        let canonical = std::fs::canonicalize(&path)
            .with_context(|| format!("resolving {}", path.display()))?;
        groups.entry(canonical).or_default().push((name, is_link));
    }
    let mut runs = Vec::new();
    for (canonical, members) in groups {
        let main = members
            .iter()
            .position(|(_, link)| !link)
            .unwrap_or_default();
        let mut run = summarize_training_run(&members[main].0, &canonical)?;
        run.shared_with = members
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != main)
            .map(|(_, (n, _))| n.clone())
            .collect();
        runs.push(run);
    }
    runs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(runs)
}

/// The training curves in `{report_dir}/training_curves/` (drawn there by tic-report's
/// command line, [`crate::plots::training_curves`]), in [`CURVES`] order, linked relative to
/// `report_dir`.
pub fn training_plots(report_dir: &Path) -> Result<Vec<Plot>> {
    let mut plots = Vec::new();
    for (stem, title, _) in CURVES {
        let path = report_dir.join(CURVES_DIR).join(format!("{stem}.png"));
        if path.is_file() {
            plots.push(Plot {
                label: title.to_string(),
                link: relative_link(report_dir, &path)?,
                path,
            });
        }
    }
    Ok(plots)
}

fn duration(s: Option<f64>) -> String {
    match s {
        None => "–".to_string(),
        Some(s) if s < 60.0 => format!("{s:.1} s"),
        Some(s) if s < 3600.0 => format!("{:.1} min", s / 60.0),
        Some(s) => format!("{:.2} h", s / 3600.0),
    }
}

pub(super) fn training_section(runs_dir: &str, runs: &[TrainingRun], plots: &[Plot]) -> String {
    let mut s = String::from("## Training runs\n\n");
    if runs.is_empty() {
        let _ = writeln!(
            s,
            "No training run (`compute.json` / `metrics.jsonl`) under `{runs_dir}`.\n"
        );
        return s;
    }
    let _ = writeln!(
        s,
        "From `{runs_dir}`. Loss: mean of the first and last 10 logged steps; time: summed \
         `step_s`; samples/s: mean over steps.\n"
    );
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let mut name = r.name.clone();
            if !r.shared_with.is_empty() {
                let _ = write!(name, " (shared with {})", r.shared_with.join(", "));
            }
            let mut steps = r.steps.map_or_else(|| "–".to_string(), |n| n.to_string());
            if r.finished == Some(false) {
                steps.push_str(" (unfinished)");
            }
            let loss = match (r.first_loss, r.last_loss) {
                (Some(a), Some(b)) => format!("{a:.3} → {b:.3}"),
                _ => "–".to_string(),
            };
            vec![
                name,
                steps,
                human_count(r.samples_seen),
                loss,
                duration(r.train_seconds),
                r.mean_samples_per_s
                    .map_or_else(|| "–".to_string(), |v| format!("{v:.1}")),
            ]
        })
        .collect();
    s.push_str(&markdown_table(
        &[
            "Run",
            "Steps",
            "Samples seen",
            "Loss first → last",
            "Training time",
            "Samples/s",
        ],
        &[Align::Left, R, R, R, R, R],
        &rows,
    ));
    s.push('\n');
    if !plots.is_empty() {
        s.push_str("Training curves (`metrics.jsonl`, zero-shot top-1 from `checkpoints/results.jsonl`), one line per run:\n\n");
    }
    for p in plots {
        let _ = writeln!(s, "![{}]({})\n", p.label, md_link_target(&p.link));
    }
    s
}
