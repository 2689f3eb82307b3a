//! Rendering: the main tables, the Markdown report and what `tic-report` prints.

use super::data::data_section;
use super::findings::Finding;
use super::lookup::{family_matrix, family_title, least_compute, summary, R};
use super::plots::plots_section;
use super::plots::Plot;
use super::seeds::{Seeds, Stat};
use super::training::training_section;
use super::training::TrainingRun;
use crate::aggregate::Aggregate;
use crate::dynamic::Report;
use crate::tables::{self, markdown_table, percent, Align};
use std::fmt::Write as _;
use std::path::Path;
use tic_shards::synth::SynthManifest;

/// Quotes `arg` for a POSIX shell when needed.
pub fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// The main tables: per family, one row per method (report order) with ID, backward,
/// forward, static average (percent), compute and its ratio to the least-compute method.
pub fn main_tables(report: &Report) -> String {
    seed_tables(&Seeds::single(report.clone()))
}

/// [`main_tables`] over several seeds: every value is the mean over the seeds, `± ` their
/// standard deviation (for one seed, exactly [`main_tables`]).
pub fn seed_tables(seeds: &Seeds) -> String {
    let report = &seeds.mean;
    let mut s = String::new();
    let least = least_compute(report);
    let t = report.steps.len();
    let over = match seeds.len() {
        1 => String::new(),
        n => format!(", mean ± std over {n} seeds"),
    };
    let mut any_incomplete = false;
    for fam in &report.families {
        let metric = report
            .runs
            .iter()
            .find_map(|r| family_matrix(r, fam))
            .map_or_else(
                || fam.family.matrix_metric().to_string(),
                |m| m.metric.clone(),
            );
        let _ = writeln!(s, "### {} ({metric}, %{over})\n", family_title(fam));
        let rows: Vec<Vec<String>> = report
            .runs
            .iter()
            .map(|run| {
                let complete = summary(run, fam).is_some_and(|s| s.complete);
                any_incomplete |= !complete;
                let compute = seeds.compute(&run.name);
                let ratio = compute
                    .mean()
                    .zip(least)
                    .filter(|(c, _)| c.is_finite())
                    .map_or_else(|| "–".to_string(), |(c, l)| format!("{:.2}×", c / l));
                vec![
                    if complete {
                        run.name.clone()
                    } else {
                        format!("{} *", run.name)
                    },
                    seeds.summary(&run.name, fam, |s| s.id).percent(),
                    seeds.summary(&run.name, fam, |s| s.backward).percent(),
                    seeds.summary(&run.name, fam, |s| s.forward).percent(),
                    static_cell(seeds, &run.name),
                    compute.count(),
                    ratio,
                ]
            })
            .collect();
        s.push_str(&markdown_table(
            &[
                "Method",
                "ID",
                "Backward",
                "Forward",
                "Static",
                "Compute",
                "× of least",
            ],
            &[Align::Left, R, R, R, R, R, R],
            &rows,
        ));
        s.push('\n');
    }
    if report.families.is_empty() {
        s.push_str("No TiC task family in report.json (no `tic/...` results).\n\n");
    }
    if any_incomplete {
        let _ = writeln!(
            s,
            "`*` incomplete matrix (fewer than {}×{t} cells): means over the cells present.\n",
            t
        );
    }
    s.push_str(&datacomp_table(seeds, &over));
    s
}

/// `n/m`, or `lo–hi/m` where the seeds differ, from per-seed `(entered, of)` counts; `None`
/// when no seed has them.
pub(super) fn count_label(counts: &[Option<(usize, usize)>]) -> Option<String> {
    let present: Vec<(usize, usize)> = counts.iter().flatten().copied().collect();
    let lo = present.iter().map(|c| c.0).min()?;
    let hi = present.iter().map(|c| c.0).max()?;
    let of = present.iter().map(|c| c.1).max()?;
    Some(if lo == hi {
        format!("{lo}/{of}")
    } else {
        format!("{lo}–{hi}/{of}")
    })
}

/// The Static cell: the static average in percent, followed by `(n/m)` when some static task
/// of the method's last model has a `null` main metric (n of its m tasks were averaged).
fn static_cell(seeds: &Seeds, method_name: &str) -> String {
    let value = seeds.static_average(method_name).percent();
    let counts = seeds.static_counts(method_name);
    let partial = counts.iter().flatten().any(|(n, total)| n < total);
    match count_label(&counts) {
        Some(label) if partial => format!("{value} ({label})"),
        _ => value,
    }
}

/// The static tasks' main metrics, one row per task (every static task name of any method's
/// last model, in name order), one column per method (percent, `± std` over the seeds); `–`
/// where a task has no main metric (FairFace's `null`) or no record. Empty without static tasks.
pub(super) fn static_tasks_table(seeds: &Seeds) -> String {
    let report = &seeds.mean;
    let names: std::collections::BTreeSet<&str> = seeds
        .reports
        .iter()
        .flat_map(|r| r.runs.iter())
        .flat_map(|run| run.static_tasks.tasks.keys().map(String::as_str))
        .collect();
    if names.is_empty() {
        return String::new();
    }
    let rows: Vec<Vec<String>> = names
        .iter()
        .map(|task| {
            std::iter::once(task.to_string())
                .chain(
                    report
                        .runs
                        .iter()
                        .map(|run| seeds.static_task(&run.name, task).percent()),
                )
                .collect()
        })
        .collect();
    let over = match seeds.len() {
        1 => String::new(),
        n => format!(", mean ± std over {n} seeds"),
    };
    let header: Vec<&str> = std::iter::once("Task")
        .chain(report.runs.iter().map(|r| r.name.as_str()))
        .collect();
    let mut align = vec![Align::Left];
    align.resize(header.len(), R);
    let mut s = format!("### Static tasks (main metric of the last model, %{over})\n\n");
    s.push_str(&markdown_table(&header, &align, &rows));
    s.push_str(
        "\n`–`: no main metric (`null` in the record, e.g. FairFace's, whose fields are in the \
         fairness tables) or no record; such tasks do not enter the Static column.\n\n",
    );
    s
}

/// DataComp's aggregates (percent, `± std` over the seeds, `(n/m)` task counts) of each method
/// whose last model's static tasks are DataComp's suite; empty when no method's are.
fn datacomp_table(seeds: &Seeds, over: &str) -> String {
    let report = &seeds.mean;
    let rows: Vec<Vec<String>> = report
        .runs
        .iter()
        .filter_map(|run| {
            let per_seed = seeds.datacomp(&run.name);
            per_seed.iter().any(Option::is_some).then(|| {
                let cells = (0..Aggregate::ALL.len()).map(|i| {
                    let stat = Stat {
                        values: per_seed
                            .iter()
                            .map(|s| s.as_ref().and_then(|s| s[i].mean))
                            .collect(),
                    };
                    let counts: Vec<Option<(usize, usize)>> = per_seed
                        .iter()
                        .map(|s| s.as_ref().map(|s| (s[i].tasks, s[i].of)))
                        .collect();
                    let label = count_label(&counts).unwrap_or_default();
                    format!("{} ({label})", stat.percent())
                });
                std::iter::once(run.name.clone()).chain(cells).collect()
            })
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut s = format!("### DataComp aggregates (static tasks, %{over})\n\n");
    s.push_str(&markdown_table(
        &tables::datacomp_header(),
        &[Align::Left, R, R, R, R, R],
        &rows,
    ));
    let _ = writeln!(s, "\n{}\n", tables::DATACOMP_NOTE);
    s
}

/// Everything [`render`] needs.
#[derive(Debug, Clone)]
pub struct RenderInput<'a> {
    /// The `tic-metrics` report of each seed (one or more).
    pub seeds: &'a Seeds,
    /// Title line.
    pub title: &'a str,
    /// The `--metrics` folders as given, one per seed (shown in the text).
    pub metrics: &'a [String],
    /// The pool description, if given.
    pub synth: Option<&'a SynthManifest>,
    /// `--runs-dir` as given and its runs, if given.
    pub training: Option<(&'a str, &'a [TrainingRun])>,
    /// Plots to link.
    pub plots: &'a [Plot],
    /// The training curves of the runs, shown in their section.
    pub training_plots: &'a [Plot],
    /// The evaluated findings.
    pub findings: &'a [Finding],
    /// The command line that regenerates the report.
    pub command: &'a str,
}

/// `1 step`, `3 steps`.
fn plural(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

fn intro(report: &Report, metrics: &[String]) -> String {
    let names: Vec<&str> = report.runs.iter().map(|r| r.name.as_str()).collect();
    let files: Vec<String> = metrics
        .iter()
        .map(|m| format!("`{}/report.json`", m.trim_end_matches('/')))
        .collect();
    let source = match files.len() {
        1 => format!("by `tic-metrics` ({})", files[0]),
        n => format!(
            "by `tic-metrics` for each of {n} seeds ({}); tables and matrices show their mean, \
             the tables ± the standard deviation over the seeds",
            files.join(", ")
        ),
    };
    format!(
        "This report compares {} ({}) over {} ({}). \
         Every model, one per method and step, was evaluated on the evaluation sets of every step, \
         which gives a T×T matrix per task family (row: training step, column: evaluation step). \
         ID is the mean of its diagonal (the current data), backward transfer the mean below it \
         (older data) and forward transfer the mean above it (future data). Static is the mean \
         over the static (non-TiC) tasks of each method's last model; compute is the cumulative \
         number of training samples seen up to the last step. Values are percentages, computed \
         {source}.\n",
        plural(names.len(), "continual-training method"),
        names.join(", "),
        plural(report.steps.len(), "time step"),
        report.steps.join(", "),
    )
}

/// What the findings rest on: one seed (no verdict can be judged beyond seed noise) or the
/// spread of `n` seeds.
pub fn seeds_note(n: usize) -> String {
    if n == 1 {
        "One seed: every number comes from a single run per method, so these verdicts cannot be \
         judged beyond seed-to-seed noise; give `tic-report` one `--metrics` folder per seed to \
         judge them on the seed spread."
            .to_string()
    } else {
        format!(
            "Judged on {n} seeds: a comparison counts only when the gap between the two methods' \
             means exceeds their pooled standard deviation over the seeds (and, for (a), \
             `--min-gap`); closer, it is undecided."
        )
    }
}

/// The Markdown report.
pub fn render(inp: &RenderInput) -> String {
    let report = &inp.seeds.mean;
    let mut s = format!("# {}\n\n", inp.title);
    s.push_str(&intro(report, inp.metrics));
    s.push('\n');
    if let Some(synth) = inp.synth {
        s.push_str(&data_section(synth));
    }
    s.push_str("## Results\n\n");
    s.push_str(&seed_tables(inp.seeds));
    s.push_str(&static_tasks_table(inp.seeds));
    let fairness: Vec<_> = report
        .runs
        .iter()
        .map(|r| (r.name.as_str(), &r.static_tasks.fairness))
        .collect();
    s.push_str(&crate::fairness::report_section(&fairness, inp.seeds.len()));
    s.push_str("## Findings\n\n");
    let _ = writeln!(s, "{}\n", seeds_note(inp.seeds.len()));
    for f in inp.findings {
        let _ = writeln!(s, "{}", f.line());
    }
    s.push('\n');
    let mean = match inp.seeds.len() {
        1 => String::new(),
        n => format!(", mean over {n} seeds"),
    };
    let _ = writeln!(
        s,
        "## Matrices\n\nRows: training step; columns: evaluation step; values in %{mean}.\n"
    );
    for fam in &report.families {
        for run in &report.runs {
            if let Some(fm) = family_matrix(run, fam) {
                let _ = writeln!(
                    s,
                    "### {} — {} ({})\n",
                    family_title(fam),
                    run.name,
                    fm.metric
                );
                s.push_str(&tables::matrix_markdown(&report.steps, fm, percent));
                s.push('\n');
            }
        }
    }
    s.push_str(&plots_section(inp.plots, &inp.metrics.join("`, `")));
    if let Some((dir, runs)) = inp.training {
        s.push_str(&training_section(dir, runs, inp.training_plots));
    }
    let _ = writeln!(s, "## Regenerate\n\n```sh\n{}\n```", inp.command);
    s
}

/// What `tic-report` prints: the main tables, the seeds note, the findings and the paths
/// written.
pub fn console(seeds: &Seeds, findings: &[Finding], output: &Path, plots: &[Plot]) -> String {
    let mut s = seed_tables(seeds);
    let _ = writeln!(s, "{}", seeds_note(seeds.len()));
    for f in findings {
        let _ = writeln!(s, "{}", f.line());
    }
    let _ = writeln!(s, "\nreport: {}", output.display());
    for p in plots {
        let _ = writeln!(s, "plot: {}", p.path.display());
    }
    s
}
