//! `tic-report`: the Markdown report of a TiC experiment (tables, findings, matrices, plots,
//! training runs) from `tic-metrics`' output: its flags and the run with its exit status.
//! The report itself is [`crate::report`]; see `docs/eval.md`.

use crate::report::{self, shell_quote, Options, Verdict};
use crate::tables::REPORT_FILE;
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// The Markdown report of a TiC-CLIP experiment (no original script: new in tic-rs).
///
/// The human-facing report, as one deterministic Markdown file.
///
/// Reads METRICS/report.json (tic-metrics --output-dir METRICS) and writes OUTPUT with: the
/// main table per task family (ID, backward, forward transfer, static average, compute and
/// its ratio to the least-compute method), the paper's findings checked against the numbers,
/// every T×T matrix, links to the plots of METRICS, the training runs of --runs-dir and the
/// data of --synth. Prints the tables, the findings and the paths written.
///
/// Seeds: give --metrics once per seed of the same experiment (same steps, families and
/// methods). Tables then show mean ± std over the seeds, and a comparison of a finding counts
/// only when the gap between the means exceeds the two methods' pooled standard deviation
/// (otherwise: "undecided"). With one --metrics the report says that it is one seed and that
/// its verdicts cannot be judged beyond seed noise.
///
/// Findings (methods matched by name):
///   (a) backward(sequential) < backward(cumulative-all) [and cumulative-exp], per family
///   (b) ID and backward of cumulative-all >= oracle's - --oracle-tolerance, per family,
///       with less compute than oracle
///   (c) restart vs oracle: numbers only
///
/// Exit status: 0 ok; 1 --check found problems or --require-findings found a finding not
/// reproduced (the report is written first in both cases); 2 error.
///
/// Example:
///
///   tic-report --metrics out/demo/metrics --runs-dir out/demo/runs
///     --synth out/demo/synth/synth.json --output out/demo/report.md --check
///
///   tic-report --metrics out/demo/metrics --metrics out/demo-s1/metrics
///     --metrics out/demo-s2/metrics --output out/seeds/report.md --json out/seeds/report.json
#[derive(Debug, Parser)]
#[command(name = "tic-report", version, verbatim_doc_comment)]
pub struct ReportArgs {
    /// tic-metrics output folder (reads report.json, links the PNG plots found there). Repeat
    /// it, once per seed, to judge the findings on the seed spread.
    #[arg(long, value_name = "DIR", required = true)]
    pub metrics: Vec<PathBuf>,

    /// tic-train runs folder ({strategy}_{step}/ with compute.json, metrics.jsonl): adds a
    /// training-runs table and the runs' training curves (loss, lr, samples/s, zero-shot
    /// top-1 per step), drawn to training_curves/ next to OUTPUT.
    #[arg(long, value_name = "DIR")]
    pub runs_dir: Option<PathBuf>,

    /// tic-synth's synth.json: adds a "Data" section.
    #[arg(long, value_name = "FILE")]
    pub synth: Option<PathBuf>,

    /// Title of the report.
    #[arg(long, value_name = "TEXT", default_value = report::DEFAULT_TITLE)]
    pub title: String,

    /// The Markdown file to write (atomically; parent folders are created). `-` writes the
    /// Markdown to standard output and the console summary to standard error.
    #[arg(long, value_name = "FILE")]
    pub output: PathBuf,

    /// Also write the numbers (every seed's value, mean, std, n) and the verdicts as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Sanity-check report.json (each seed's); exit 1 listing every problem (fewer than 2 steps, an
    /// incomplete matrix, a missing or non-finite value or one outside 0–1, no compute figure).
    #[arg(long)]
    pub check: bool,

    /// Exit 1 if a finding is "not reproduced".
    #[arg(long)]
    pub require_findings: bool,

    /// Absolute slack of finding (b) on ID and backward transfer (metrics in [0, 1]).
    #[arg(long, value_name = "ABS", default_value_t = report::DEFAULT_ORACLE_TOLERANCE)]
    pub oracle_tolerance: f64,
    /// A task family whose best ID over all methods is below this (absolute, e.g. 0.05 = 5 %)
    /// is at chance level: it is shown but counts neither for nor against findings (a), (b).
    #[arg(long, value_name = "ABS", default_value_t = report::DEFAULT_MIN_SIGNAL)]
    pub min_signal: f64,
    /// Smallest gap between sequential's and a cumulative method's backward transfer that
    /// counts for or against finding (a) (absolute, 0.01 = 1 point); closer is noise.
    #[arg(long, value_name = "ABS", default_value_t = report::DEFAULT_MIN_GAP)]
    pub min_gap: f64,

    /// `-v` / `-q`.
    #[command(flatten)]
    pub verbosity: tic_shards::cli::Verbosity,
}

impl ReportArgs {
    /// The command line that regenerates the report (logging flags and defaults left out).
    pub fn command(&self) -> String {
        let mut parts = vec!["tic-report".to_string()];
        let mut push = |flag: &str, value: Option<String>| {
            parts.push(flag.to_string());
            parts.extend(value.map(|v| shell_quote(&v)));
        };
        for m in &self.metrics {
            push("--metrics", Some(m.display().to_string()));
        }
        if let Some(d) = &self.runs_dir {
            push("--runs-dir", Some(d.display().to_string()));
        }
        if let Some(f) = &self.synth {
            push("--synth", Some(f.display().to_string()));
        }
        if self.title != report::DEFAULT_TITLE {
            push("--title", Some(self.title.clone()));
        }
        if self.oracle_tolerance != report::DEFAULT_ORACLE_TOLERANCE {
            push(
                "--oracle-tolerance",
                Some(self.oracle_tolerance.to_string()),
            );
        }
        if self.min_signal != report::DEFAULT_MIN_SIGNAL {
            push("--min-signal", Some(self.min_signal.to_string()));
        }
        if self.min_gap != report::DEFAULT_MIN_GAP {
            push("--min-gap", Some(self.min_gap.to_string()));
        }
        push("--output", Some(self.output.display().to_string()));
        if let Some(j) = &self.json {
            push("--json", Some(j.display().to_string()));
        }
        if self.check {
            push("--check", None);
        }
        if self.require_findings {
            push("--require-findings", None);
        }
        parts.join(" ")
    }

    /// The inputs of [`report::generate`] these flags give.
    pub fn options(&self) -> Options {
        Options {
            metrics: self.metrics.clone(),
            runs_dir: self.runs_dir.clone(),
            synth: self.synth.clone(),
            title: self.title.clone(),
            output: self.output.clone(),
            json: self.json.clone(),
            oracle_tolerance: self.oracle_tolerance,
            min_signal: self.min_signal,
            min_gap: self.min_gap,
            command: self.command(),
        }
    }
}

/// Draws the training curves of `--runs-dir`'s runs into `training_curves/` next to the report
/// (where [`report::generate`] links them), unless the report goes to standard output. Curves
/// of an earlier report that no run has now are removed.
fn draw_training_curves(args: &ReportArgs) -> anyhow::Result<()> {
    let Some(runs_dir) = args.runs_dir.as_deref() else {
        return Ok(());
    };
    if tic_shards::storage::is_stdio(&args.output) {
        return Ok(());
    }
    let runs = report::training_runs(runs_dir)?;
    let dir = report::report_dir(&args.output).join(crate::runs::CURVES_DIR);
    for (stem, _, _) in crate::runs::CURVES {
        for ext in ["png", "svg"] {
            let _ = std::fs::remove_file(dir.join(format!("{stem}.{ext}")));
        }
    }
    let curves: Vec<(String, &crate::runs::TrainingCurves)> = runs
        .iter()
        .filter(|r| !r.curves.is_empty())
        .map(|r| (r.name.clone(), &r.curves))
        .collect();
    if curves.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    crate::plots::training_curves(&curves, &dir).map(drop)
}

/// Writes the report and prints its summary; the exit status: 0 ok, 1 `--check` found
/// problems or `--require-findings` a finding not reproduced, 2 error.
pub fn run(args: &ReportArgs) -> ExitCode {
    let outcome = match draw_training_curves(args).and_then(|()| report::generate(&args.options()))
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!("tic-report: error: {e:#}");
            return ExitCode::from(2);
        }
    };
    if tic_shards::storage::is_stdio(&args.output) {
        eprint!("{}", outcome.console);
    } else {
        print!("{}", outcome.console);
    }
    let mut failed = false;
    if args.check && !outcome.problems.is_empty() {
        let source = match args.metrics.as_slice() {
            [one] => one.join(REPORT_FILE).display().to_string(),
            many => format!("{} reports", many.len()),
        };
        eprintln!(
            "tic-report: --check: {} problem(s) in {source}:",
            outcome.problems.len(),
        );
        for p in &outcome.problems {
            eprintln!("  - {p}");
        }
        failed = true;
    }
    if args.require_findings {
        let bad: Vec<_> = outcome
            .findings
            .iter()
            .filter(|f| f.verdict == Verdict::NotReproduced)
            .collect();
        if !bad.is_empty() {
            eprintln!("tic-report: --require-findings: not reproduced:");
            for f in bad {
                eprintln!("  {}", f.line());
            }
            failed = true;
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
