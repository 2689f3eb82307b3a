//! `tic-report`: the human-facing report of a TiC experiment.
//!
//! Reads what `tic-metrics` wrote (`report.json` and the plots next to it), optionally the
//! training runs of `tic-train` and the synthetic pool's `synth.json`, and renders one
//! deterministic Markdown file (no timestamps: the same inputs give the same bytes):
//!
//! 1. title and what the report shows;
//! 2. the data (from `synth.json`);
//! 3. per task family, one row per method: ID, backward, forward transfer, static average
//!    and compute (cumulative samples seen, and × of the least-compute method);
//! 4. the paper's findings, each evaluated from the numbers ([`findings`]);
//! 5. every T×T matrix; 6. links to the plots; 7. the training runs ([`training_runs`]) and
//!    their training curves ([`training_plots`], drawn by `tic-report`'s command line);
//! 8. the command that regenerates it.
//!
//! [`check`] lists what makes a report unfit to read (too few steps, incomplete matrices,
//! values missing or outside `[0, 1]`, no compute figure). See `docs/eval.md` §4.
//!
//! Several seeds of one experiment (one `--metrics` folder each) give tables of mean ± std and
//! findings judged against the seed spread ([`Seeds`], [`seed_findings`]); one seed gives the
//! plain numbers and says that its verdicts cannot be judged beyond seed noise.
//!
//! One concern per file: `findings` (the paper's claims), `seeds` (several seeds: means,
//! spreads, the decision rule), `checks` (`--check`), `data` (`synth.json`), `training` (run
//! folders, read through [`crate::runs`]), `plots` (links), `render` (tables, Markdown,
//! console), `json` (`--json`), all built on `lookup` (a method, its matrix, its compute);
//! this file holds [`generate`], which ties them together.

mod checks;
mod data;
mod findings;
mod json;
mod lookup;
mod plots;
mod render;
mod seeds;
#[cfg(test)]
mod tests;
mod training;

pub use checks::check;
pub use findings::{
    findings, findings_with, findings_with_gap, seed_findings, Evidence, Finding, Verdict, CLAIM_A,
    CLAIM_B, CLAIM_C, DEFAULT_MIN_GAP, DEFAULT_MIN_SIGNAL, DEFAULT_ORACLE_TOLERANCE,
};
pub use json::{
    read_compute_mean, read_family_id, read_first_family, read_method, read_stat, read_verdict,
    report_json, stat_json,
};
pub use lookup::{
    family_matrix, final_compute, method, SummaryField, CUMULATIVE_ALL, CUMULATIVE_EQUAL,
    CUMULATIVE_EXP, ORACLE, RESTART, SEQUENTIAL,
};
pub use plots::{find_plots, relative_link, Plot};
pub use render::{console, main_tables, render, seed_tables, seeds_note, shell_quote, RenderInput};
pub use seeds::{decide, pooled_std, Seeds, Stat};
pub use training::{summarize_training_run, training_plots, training_runs, TrainingRun};

use crate::dynamic::Report;
use crate::tables::REPORT_FILE;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use tic_shards::synth::SynthManifest;

/// The default `--title`.
pub const DEFAULT_TITLE: &str = "TiC-CLIP report";

/// Reads `dir/report.json` as written by `tic-metrics`.
pub fn load_report(metrics_dir: &Path) -> Result<Report> {
    let path = metrics_dir.join(REPORT_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (run tic-metrics --output-dir {} first)",
            path.display(),
            metrics_dir.display()
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

// ---- end to end ----------------------------------------------------------------------------

/// The inputs of [`generate`].
#[derive(Debug, Clone)]
pub struct Options {
    /// The `tic-metrics` output folders, one per seed of the same experiment (at least one).
    pub metrics: Vec<PathBuf>,
    /// `tic-train` runs folder.
    pub runs_dir: Option<PathBuf>,
    /// `synth.json`.
    pub synth: Option<PathBuf>,
    /// Title.
    pub title: String,
    /// The Markdown file to write.
    pub output: PathBuf,
    /// Where to write [`report_json`], if anywhere.
    pub json: Option<PathBuf>,
    /// Slack of finding (b).
    pub oracle_tolerance: f64,
    /// Families whose best ID is below this do not count for the findings.
    pub min_signal: f64,
    /// Smallest backward-transfer gap that decides finding (a).
    pub min_gap: f64,
    /// The command line shown under "Regenerate".
    pub command: String,
}

/// What [`generate`] produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The Markdown written to [`Options::output`].
    pub markdown: String,
    /// What to print on stdout.
    pub console: String,
    /// The findings.
    pub findings: Vec<Finding>,
    /// [`check`]'s problems (with several seeds, each prefixed by its `--metrics` folder).
    pub problems: Vec<String>,
}

/// The folder of the report file `output` (plots are linked relative to it).
pub fn report_dir(output: &Path) -> PathBuf {
    match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Reads the inputs, renders the report and writes it atomically to `opts.output` (`-`: to
/// standard output; plot links are then relative to the working folder).
pub fn generate(opts: &Options) -> Result<Outcome> {
    if !opts.oracle_tolerance.is_finite() || opts.oracle_tolerance < 0.0 {
        bail!(
            "--oracle-tolerance must be a non-negative number, got {}",
            opts.oracle_tolerance
        );
    }
    let reports = opts
        .metrics
        .iter()
        .map(|m| load_report(m))
        .collect::<Result<Vec<_>>>()?;
    let labels: Vec<String> = opts
        .metrics
        .iter()
        .map(|m| m.display().to_string())
        .collect();
    let seeds = Seeds::new(labels.clone(), reports)?;
    let synth = opts
        .synth
        .as_deref()
        .map(SynthManifest::from_path)
        .transpose()?;
    let training = opts.runs_dir.as_deref().map(training_runs).transpose()?;
    let report_dir = report_dir(&opts.output);
    std::fs::create_dir_all(&report_dir)
        .with_context(|| format!("creating {}", report_dir.display()))?;
    let mut plots = Vec::new();
    for ((dir, label), report) in opts.metrics.iter().zip(&labels).zip(&seeds.reports) {
        for mut p in find_plots(report, dir, &report_dir)? {
            if seeds.len() > 1 {
                p.label = format!("{label}: {}", p.label);
            }
            plots.push(p);
        }
    }
    if !opts.min_gap.is_finite() || opts.min_gap < 0.0 {
        bail!(
            "--min-gap must be a non-negative number, got {}",
            opts.min_gap
        );
    }
    // The training curves go next to the report (none when it goes to standard output).
    let training_plots = match &training {
        Some(_) if !tic_shards::storage::is_stdio(&opts.output) => training_plots(&report_dir)?,
        _ => Vec::new(),
    };
    let findings = seed_findings(&seeds, opts.oracle_tolerance, opts.min_signal, opts.min_gap);
    let runs_dir = opts.runs_dir.as_ref().map(|p| p.display().to_string());
    let markdown = render(&RenderInput {
        seeds: &seeds,
        title: &opts.title,
        metrics: &labels,
        synth: synth.as_ref(),
        training: runs_dir.as_deref().zip(training.as_deref()),
        plots: &plots,
        training_plots: &training_plots,
        findings: &findings,
        command: &opts.command,
    });
    if tic_shards::storage::is_stdio(&opts.output) {
        tic_shards::storage::write_output("-", markdown.as_bytes())?;
    } else {
        crate::write_output(&opts.output, markdown.as_bytes())?;
    }
    if let Some(path) = &opts.json {
        let mut text = serde_json::to_string_pretty(&report_json(&seeds, &findings))?;
        text.push('\n');
        crate::write_output(path, text.as_bytes())?;
    }
    let problems = if seeds.len() == 1 {
        check(&seeds.reports[0])
    } else {
        labels
            .iter()
            .zip(&seeds.reports)
            .flat_map(|(label, r)| check(r).into_iter().map(move |p| format!("{label}: {p}")))
            .collect()
    };
    Ok(Outcome {
        console: console(
            &seeds,
            &findings,
            &opts.output,
            &[plots, training_plots].concat(),
        ),
        markdown,
        problems,
        findings,
    })
}
