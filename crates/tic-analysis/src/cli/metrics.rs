//! `tic-metrics`: the TiC-CLIP dynamic evaluation over several runs.
//!
//! Reads the `eval_results.jsonl` of every model of every run, builds the T×T matrix per TiC
//! task family, the paper's ID / backward / forward transfer, static-task and compute columns,
//! and writes Markdown, CSV and JSON tables plus PNG/SVG plots. See `docs/eval.md`.

use crate::dynamic::{analyze, Manifest, Run};
use crate::plots::{self, ComputeMetric};
use crate::tables;
use anyhow::{bail, Context, Result};
use clap::Parser;
use std::collections::HashMap;
use std::path::PathBuf;

/// TiC-CLIP's dynamic evaluation over several runs (no original script: the paper's tables).
///
/// T×T matrices, in-distribution / backward / forward transfer, static tasks and compute, over
/// several runs (methods), as tables and plots.
///
/// Layout of a run directory (one per method, given as NAME=DIR):
///
///   DIR/{time}/eval_results.jsonl   DataComp/tic-eval results of the model trained at {time}
///   DIR/{time}/compute.json         optional: {"samples_seen": N}
///
/// {time} is YYYY, YYYYMM or a range such as 2014-2016. Other entries of DIR are ignored.
///
/// Example:
///
///   tic-metrics --runs sequential=results/seq cumulative=results/cum
///     --runs oracle=results/oracle --run-samples oracle=129024000
///     --samples-per-step 18432000 --macs-per-sample 8.8e9 --output-dir results/metrics
#[derive(Debug, Parser)]
#[command(name = "tic-metrics", version, verbatim_doc_comment)]
pub struct MetricsArgs {
    /// Runs as NAME=DIR (repeatable; several per flag allowed), in display order.
    #[arg(long = "runs", value_name = "NAME=DIR", num_args = 1..)]
    pub runs: Vec<String>,

    /// JSON manifest listing runs and models explicitly (see docs/eval.md); its runs come
    /// after those of --runs.
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,

    /// Samples seen per training step, for models without their own figure
    /// (e.g. 18432000 for tic_medium: 4096 x 4500).
    #[arg(long, value_name = "N")]
    pub samples_per_step: Option<f64>,

    /// Per-run samples seen per model, NAME=N, overriding --samples-per-step
    /// (e.g. oracle=129024000 for a 7-step budget trained once).
    #[arg(long = "run-samples", value_name = "NAME=N", num_args = 1..)]
    pub run_samples: Vec<String>,

    /// Training MACs per sample (forward + backward); the compute axis is then in MACs,
    /// else in samples seen. Overrides the manifest's value.
    #[arg(long, value_name = "MACS")]
    pub macs_per_sample: Option<f64>,

    /// Where tables and plots go (created if needed).
    #[arg(long, value_name = "DIR", default_value = "tic_metrics")]
    pub output_dir: PathBuf,

    /// The y axis of the accuracy-versus-compute plot.
    #[arg(long, value_enum, default_value_t = ComputeMetric::Auto)]
    pub compute_metric: ComputeMetric,

    /// Do not draw plots (tables only).
    #[arg(long)]
    pub no_plots: bool,
}

/// Logs to standard error at `info` (`RUST_LOG` overrides it).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
}

fn split_pair<'a>(s: &'a str, flag: &str) -> Result<(&'a str, &'a str)> {
    match s.split_once('=') {
        Some((a, b)) if !a.is_empty() && !b.is_empty() => Ok((a, b)),
        _ => bail!("{flag} expects NAME=VALUE, got {s:?}"),
    }
}

/// The runs of `--runs` and `--manifest` (in that order) with their samples per model, and
/// the MACs per sample (`--macs-per-sample`, else the manifest's).
fn load_runs(args: &MetricsArgs) -> Result<(Vec<Run>, Option<f64>)> {
    let mut per_run_samples = HashMap::new();
    for s in &args.run_samples {
        let (name, n) = split_pair(s, "--run-samples")?;
        let n: f64 = n
            .parse()
            .with_context(|| format!("--run-samples {s:?}: {n:?} is not a number"))?;
        per_run_samples.insert(name.to_string(), n);
    }
    let mut runs = Vec::new();
    for s in &args.runs {
        let (name, dir) = split_pair(s, "--runs")?;
        let samples = per_run_samples.get(name).copied().or(args.samples_per_step);
        runs.push(Run::from_dir(name, &PathBuf::from(dir), samples)?);
    }
    let mut macs = args.macs_per_sample;
    if let Some(path) = &args.manifest {
        let manifest = Manifest::from_path(path)?;
        macs = macs.or(manifest.macs_per_sample);
        let base = path.parent().map(PathBuf::from).unwrap_or_default();
        let mut loaded = manifest.load_runs(&base)?;
        for run in &mut loaded {
            for m in &mut run.models {
                if m.samples_seen.is_none() {
                    m.samples_seen = per_run_samples
                        .get(&run.name)
                        .copied()
                        .or(args.samples_per_step);
                }
            }
        }
        runs.extend(loaded);
    }
    if runs.is_empty() {
        bail!("nothing to do: give --runs NAME=DIR and/or --manifest FILE");
    }
    for name in per_run_samples.keys() {
        if !runs.iter().any(|r| &r.name == name) {
            bail!("--run-samples names run {name:?}, which is not among the runs");
        }
    }
    Ok((runs, macs))
}

/// Analyzes the runs, writes tables (and plots) into `--output-dir`, prints the summary
/// tables on standard output and the number of files written on standard error.
pub fn run(args: &MetricsArgs) -> Result<()> {
    let (runs, macs) = load_runs(args)?;
    let report = analyze(&runs, macs)?;
    let mut written = tables::write_all(&report, &args.output_dir)?;
    if !args.no_plots {
        written.extend(plots::heatmaps(&report, &args.output_dir)?);
        written.extend(plots::compute_plot(
            &report,
            &args.output_dir,
            args.compute_metric,
        )?);
    }
    let md = tables::markdown(&report);
    let summary = md.split("## Matrices").next().unwrap_or(&md);
    println!("{}", summary.trim_end());
    eprintln!(
        "wrote {} files to {}",
        written.len(),
        args.output_dir.display()
    );
    Ok(())
}
