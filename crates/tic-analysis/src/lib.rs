//! tic-analysis: what TiC-CLIP does with evaluation results, apart from evaluating.
//!
//! `tic-eval` writes one `eval_results.jsonl` per checkpoint; this crate reads them back over
//! several runs (methods) and turns them into the paper's dynamic evaluation, tables, plots
//! and the experiment's report. Built bottom up (a module only uses those listed before it):
//!
//! * [`aggregate`]: DataComp's aggregate scores (`aggregate_scores.py`): its 38 main-metric
//!   tasks and their groups, each mean with the number of tasks that entered it.
//! * [`runs`]: reading `tic-train`'s run files (`compute.json`, `metrics.jsonl`) through its
//!   record types (`tic_train::records`).
//! * [`dynamic`]: the paper's dynamic evaluation (T×T matrices, ID / backward / forward
//!   transfer, static tasks, compute) over several runs.
//! * [`tables`]: Markdown, CSV and JSON renderings of a [`dynamic::Report`].
//! * [`fairness`]: DataComp's fairness tables (`fairness_tables.py`, Tables 3–6) of a
//!   FairFace / UTKFace record, as the script prints them and as Markdown.
//! * [`report`]: the human-facing Markdown report of an experiment (`tic-report`): tables,
//!   the paper's findings checked against the numbers, matrices, plots, training runs.
//! * [`sweep`]: a budget sweep over several multi-seed reports (`tic-sweep`).
//! * [`plots`]: heatmaps, accuracy-versus-compute and sweep plots (PNG + SVG) with `plotters`.
//! * [`cli`]: the command lines of `tic-aggregate`, `tic-metrics`, `tic-report` and
//!   `tic-sweep`.
//!
//! Task keys are parsed with `tic_splits::taskkey`, records read with `tic_eval::results`.
//! See `docs/eval.md` for the definitions and the `tic-metrics` input layout.

pub mod aggregate;
pub mod cli;
pub mod dynamic;
pub mod fairness;
pub mod plots;
pub mod report;
pub mod runs;
pub mod sweep;
pub mod tables;

/// Writes an output file atomically (`tic_shards::atomic`: temp file + rename, mode 0644).
pub use tic_shards::atomic::write_file as write_output;
