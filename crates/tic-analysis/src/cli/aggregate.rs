//! `tic-aggregate`: DataComp's `aggregate_scores.py --input eval_results.jsonl`, with the
//! number of tasks that entered each mean and the missing tasks named. The numbers are
//! [`crate::aggregate`]; see `docs/eval.md`.
//!
//! Standard output is the original's: the five `{label}: {mean:.3f}` lines, byte for byte, for
//! a file with all 38 main metrics. Everything else goes to standard error, so scripts that
//! read the original's lines keep working: how many tasks entered each mean, the records left
//! out (tasks outside DataComp's suite), and the missing tasks.

use crate::aggregate::{
    describe_missing, print_scores, read_suite_metrics, task_counts, DATACOMP_MAIN_TASKS,
};
use anyhow::Result;
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// DataComp's aggregate scores of one results file (replaces DataComp's aggregate_scores.py).
///
/// Prints ImageNet, ImageNet dist. shifts, VTAB, Retrieval and Average over the main metrics of
/// DataComp's 38 scored tasks, matched by the records' `dataset` name, as
/// `aggregate_scores.py --input FILE` prints them (the same lines, byte for byte). Standard
/// error gets how many tasks entered each mean, and the records left out: tasks outside
/// DataComp's suite (TiC's tic/... tasks) enter no mean; FairFace and UTKFace have no main
/// metric. Records whose main metric is null are dropped; a task's last record wins.
///
/// Missing tasks: when some of the 38 have no record or only a null main metric, it names them
/// and exits 1 (the original asserts 38 records). With --allow-missing it prints the means over
/// the tasks present instead, each short one marked on its line:
///
///   VTAB: 0.512 (partial: 12 of 13 tasks)
///
/// Exit status: 0 ok; 1 missing tasks or an unreadable file; 2 bad arguments.
///
/// Example:
///
///   tic-aggregate --input out/eval/eval_results.jsonl
#[derive(Debug, Parser)]
#[command(name = "tic-aggregate", version, verbatim_doc_comment)]
pub struct AggregateArgs {
    /// Path to the results file (eval_results.jsonl of DataComp's evaluate.py or tic-eval).
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,

    /// When main metrics are missing, print the means over the tasks present (each short
    /// mean marked partial, with its task count) instead of failing.
    #[arg(long)]
    pub allow_missing: bool,
}

/// What one run prints: the lines for standard output and those for standard error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Printed {
    /// The aggregate lines.
    pub stdout: String,
    /// Task counts and notes, each line prefixed `tic-aggregate: {file}: `.
    pub stderr: String,
    /// False when main metrics are missing and `--allow-missing` was not given (nothing
    /// averaged, exit 1).
    pub complete: bool,
}

/// At most this many left-out task names are listed.
const LISTED: usize = 5;

/// Reads `--input` and renders what to print (tasks missing without `--allow-missing`: only
/// the notes, naming them); an unreadable file is an error naming it.
pub fn aggregate(args: &AggregateArgs) -> Result<Printed> {
    let path = &args.input;
    let suite = read_suite_metrics(path)?;
    let prefix = format!("tic-aggregate: {}: ", path.display());
    let mut stderr = String::new();
    if !suite.other_tasks.is_empty() {
        let n = suite.other_tasks.len();
        let mut names = suite.other_tasks[..n.min(LISTED)].join(", ");
        if n > LISTED {
            names.push_str(&format!(" and {} more", n - LISTED));
        }
        stderr.push_str(&format!(
            "{prefix}left out {n} task(s) outside DataComp's suite (aggregate_scores.py would \
             stop at its 38-task assertion): {names}\n"
        ));
    }
    let missing = suite.missing();
    if !missing.is_empty() {
        let what = format!(
            "{} of DataComp's {} main metrics missing: {}",
            missing.len(),
            DATACOMP_MAIN_TASKS.len(),
            describe_missing(&missing)
        );
        if !args.allow_missing {
            stderr.push_str(&format!(
                "{prefix}{what}; nothing averaged (--allow-missing averages the tasks present, \
                 marked partial)\n"
            ));
            return Ok(Printed {
                stdout: String::new(),
                stderr,
                complete: false,
            });
        }
        stderr.push_str(&format!("{prefix}partial: {what}\n"));
    }
    let scores = suite.scores();
    stderr.push_str(&format!("{prefix}{}\n", task_counts(&scores)));
    Ok(Printed {
        stdout: print_scores(&scores),
        stderr,
        complete: true,
    })
}

/// Runs `tic-aggregate`: prints the aggregates and notes (exit 0), or the notes naming the
/// missing tasks or the error (exit 1).
pub fn run(args: &AggregateArgs) -> ExitCode {
    match aggregate(args) {
        Ok(p) => {
            print!("{}", p.stdout);
            eprint!("{}", p.stderr);
            if p.complete {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("tic-aggregate: {e:#}");
            ExitCode::from(1)
        }
    }
}
