//! tic-eval: the evaluation half of TiC-CLIP.
//!
//! This crate holds everything of the evaluation that works on embeddings, result files and
//! tables; the model-facing `tic-eval` binary (DataComp's `evaluate.py`) calls into it.
//!
//! * [`matrix`]: a small row-major `f32` matrix and the blocked, parallel `A·Bᵀ`.
//! * [`metrics`]: CLIP_benchmark 1.4.0-exact zero-shot classification and retrieval metrics,
//!   and restricted (class-group) accuracy.
//! * [`results`]: DataComp `eval_results.jsonl` records (read, append, resume).
//! * [`tasklist`]: DataComp/TiC `tasklist.yml` and task-key → data-path resolution.
//! * [`dynamic`]: the paper's dynamic evaluation (T×T matrices, ID / backward / forward
//!   transfer, static tasks, compute) over several runs.
//! * [`tables`]: Markdown, CSV and JSON renderings of a [`dynamic::Report`].
//! * [`plots`]: heatmaps and accuracy-versus-compute plots (PNG + SVG) with `plotters`.
//! * [`report`]: the human-facing Markdown report of an experiment (`tic-report`): tables,
//!   the paper's findings checked against the numbers, matrices, plots, training runs.
//! * [`evalset`]: CLIP_benchmark WebDataset evaluation sets (labels, captions, shards).
//! * [`embed`]: embedding a set through `tic_model::embed` (decode threads + batched forward).
//! * [`evaluate`]: DataComp `evaluate.py` as a library (model discovery, one task end to end),
//!   used by the `tic-eval` binary.
//! * [`spread`]: `tic-eval` under `mpirun`: tasks dealt to the ranks, results merged on rank 0
//!   in single-process order.
//! * The `tic-eval` binary: its command line ([`args`]), the run ([`run`]), where the sets are
//!   read from ([`data_root`]: folder, object store, `pipe:` template), the output folder
//!   ([`output`]: `eval_info.json`, failure log) and the closing [`summary`].
//!
//! See `docs/eval.md` for the precise metric definitions and the `tic-metrics` input layout.

pub mod args;
pub mod data_root;
pub mod dynamic;
pub mod embed;
pub mod evalset;
pub mod evaluate;
pub mod matrix;
pub mod metrics;
pub mod output;
pub mod plots;
pub mod report;
pub mod results;
pub mod run;
pub mod spread;
pub mod summary;
pub mod sweep;
pub mod tables;
pub mod tasklist;

/// Writes an output file atomically (`tic_shards::atomic`: temp file + rename, mode 0644).
pub use tic_shards::atomic::write_file as write_output;
