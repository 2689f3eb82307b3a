//! Looking things up in a report: a method by name, its matrix and transfer summary for a
//! family, its compute. Every section of the report (findings, seeds, checks, tables) reads
//! the numbers through these.

use crate::dynamic::{FamilyKey, FamilyMatrix, Report, RunReport, TransferSummary};
use crate::tables::Align;

/// Right-aligned table column.
pub(super) const R: Align = Align::Right;

/// Method names the findings look for (matched exactly).
pub const SEQUENTIAL: &str = "sequential";
/// Warm start on all data seen so far.
pub const CUMULATIVE_ALL: &str = "cumulative-all";
/// Warm start with exponentially decaying replay of old data.
pub const CUMULATIVE_EXP: &str = "cumulative-exp";
/// Warm start with equal replay of every old step.
pub const CUMULATIVE_EQUAL: &str = "cumulative-equal";
/// Trained from scratch on all data at every step (the expensive reference).
pub const ORACLE: &str = "oracle";
/// Random init at every step with the sequential budget.
pub const RESTART: &str = "restart";

/// The run called `name`.
pub fn method<'a>(report: &'a Report, name: &str) -> Option<&'a RunReport> {
    report.runs.iter().find(|r| r.name == name)
}

/// The run's matrix for `family`.
pub fn family_matrix<'a>(run: &'a RunReport, family: &FamilyKey) -> Option<&'a FamilyMatrix> {
    run.matrices.iter().find(|m| &m.family == family)
}

/// Picks ID, backward or forward transfer out of a [`TransferSummary`].
pub type SummaryField = fn(&TransferSummary) -> Option<f64>;

/// The run's transfer summary for `family`.
pub(super) fn summary<'a>(run: &'a RunReport, family: &FamilyKey) -> Option<&'a TransferSummary> {
    family_matrix(run, family).map(|m| &m.summary)
}

/// The run's compute: cumulative samples seen by its last model.
pub fn final_compute(run: &RunReport) -> Option<f64> {
    run.per_step.last().and_then(|p| p.cumulative_samples)
}

/// The smallest positive, finite [`final_compute`] over the runs.
pub(super) fn least_compute(report: &Report) -> Option<f64> {
    report
        .runs
        .iter()
        .filter_map(final_compute)
        .filter(|c| c.is_finite() && *c > 0.0)
        .min_by(f64::total_cmp)
}

/// A family as headings name it: `datacomp retrieval yearly`.
pub(super) fn family_title(f: &FamilyKey) -> String {
    format!("{} {} {}", f.dataset, f.family, f.timescale.as_str())
}
