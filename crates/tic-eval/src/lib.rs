//! tic-eval: the evaluation half of TiC-CLIP, DataComp's `evaluate.py` with CLIP_benchmark's
//! metrics.
//!
//! This crate evaluates checkpoints: it reads task lists and evaluation sets, embeds them with
//! a model, computes the metrics and records them; the model-facing `tic-eval` binary calls
//! into it, and `tic-train` uses it for zero-shot validation during training. What is done
//! with the records afterwards (T×T matrices, tables, plots, the report) is `tic-analysis`.
//!
//! Built bottom up (a module only uses those listed before it):
//!
//! * [`error`]: the error of matrices and metrics (bad shapes, labels or values).
//! * [`matrix`]: a small row-major `f32` matrix and the blocked, parallel `A·Bᵀ`.
//! * [`metrics`]: CLIP_benchmark 1.4.0-exact zero-shot classification and retrieval metrics,
//!   restricted (class-group) accuracy, and DataComp's WILDS / Dollar Street / GeoDE group
//!   evaluators.
//! * [`tasklist`]: reading DataComp/TiC `tasklist.yml` (the key grammar and the entry schema
//!   are `tic_splits::taskkey` and `tic_splits::taskspec`).
//! * [`results`]: DataComp `eval_results.jsonl` records (read, append, resume).
//! * [`evalset`]: CLIP_benchmark WebDataset evaluation sets (labels, captions, shards), in the
//!   layout `tic_shards::evalset_layout` defines.
//! * [`hf_cache`]: DataComp's Hugging Face sets (Flickr, MSCOCO, WinoGAViL) read from the
//!   Arrow files `datasets` cached under `DATA_DIR/hf_cache`, in both of its layouts.
//! * [`embed`]: embedding a set through `tic_model::embed` (decode threads + batched forward).
//! * [`hf_eval`]: those sets embedded (streamed from the Arrow files) and WinoGAViL scored.
//! * [`run_folder`]: a training run's folder (checkpoint and architecture files), which
//!   `tic-train` writes and [`evaluate`] finds a run's model in.
//! * [`evaluate`]: DataComp `evaluate.py` as a library (the model to evaluate, one task end to
//!   end), used by the `tic-eval` binary.
//! * [`spread`]: `tic-eval` under `mpirun`: tasks dealt to the ranks, results merged on rank 0
//!   in single-process order.
//! * The `tic-eval` binary: its command line ([`args`]), the run ([`run`]), where the sets are
//!   read from ([`data_root`]: folder, object store, `pipe:` template), the output folder
//!   ([`output`]: `eval_info.json`, failure log) and the closing [`summary`].
//!
//! See `docs/eval.md` for the precise metric definitions.

pub mod args;
pub mod data_root;
pub mod embed;
pub mod error;
pub mod evalset;
pub mod evaluate;
pub mod hf_cache;
pub mod hf_eval;
pub mod matrix;
pub mod metrics;
pub mod output;
pub mod results;
pub mod run;
pub mod run_folder;
pub mod spread;
pub mod summary;
pub mod tasklist;

/// Writes an output file atomically (`tic_shards::atomic`: temp file + rename, mode 0644).
pub use tic_shards::atomic::write_file as write_output;
