//! The command lines of the crate's binaries: each module holds one binary's clap arguments
//! and the `run` its `main` calls, so that `src/bin/*.rs` only parse and report.
//!
//! * [`aggregate`]: `tic-aggregate` (one results file → DataComp's aggregate scores);
//! * [`metrics`]: `tic-metrics` (results → matrices, tables, plots);
//! * [`report`]: `tic-report` (tables, findings, the Markdown report);
//! * [`sweep`]: `tic-sweep` (a budget sweep over several `tic-report --json`).

pub mod aggregate;
pub mod metrics;
pub mod report;
pub mod sweep;
