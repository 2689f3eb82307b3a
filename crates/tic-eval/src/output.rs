//! `tic-eval`'s output folder (`--output_dir`, on rank 0 only): which model its results belong
//! to (`eval_info.json`, DataComp's `info.pkl` check), the results already there (resume), and
//! the failure log (`eval_failures.jsonl`).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use tic_shards::storage::OutputDir;

use crate::evaluate::ModelSource;
use crate::results::ResultsFile;
use crate::tasklist::{Task, TaskList};

/// The output folder, opened: where results go, and those already there.
pub struct OutputFolder {
    /// `--output_dir` (an object-store one is staged locally and synced back after each round).
    pub staged: OutputDir,
    /// Its local folder.
    pub dir: PathBuf,
    /// Its `eval_results.jsonl`.
    pub results: ResultsFile,
}

impl OutputFolder {
    /// Opens `--output_dir out` for `model`'s results: an object-store folder's previous
    /// results are downloaded (resume), stale temporary files removed, and results of another
    /// model refused ([`check_eval_info`]).
    pub fn open(out: &Path, model: &ModelSource) -> Result<Self> {
        let staged = OutputDir::resume(out)?;
        let dir = staged.path().to_path_buf();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        tic_shards::atomic::remove_stale_temps(&dir)
            .with_context(|| format!("cleaning {}", dir.display()))?;
        check_eval_info(&dir, model)?;
        let results = ResultsFile::open_in_dir(&dir)?;
        Ok(OutputFolder {
            staged,
            dir,
            results,
        })
    }

    /// The indices of the `selected` tasks of `list` that have no record yet.
    pub fn pending(&self, selected: &[&Task], list: &TaskList) -> Vec<usize> {
        (0..selected.len())
            .filter(|&i| !self.results.is_done(selected[i], list))
            .collect()
    }
}

/// Which model the results in an output folder belong to ([`eval_info`]).
pub const EVAL_INFO_FILE: &str = "eval_info.json";
/// The tasks that failed, one JSON line each ([`log_failure`]).
pub const FAILURES_FILE: &str = "eval_failures.jsonl";

/// The identity `eval_info.json` records: the architecture's name and JSON, and the checkpoint
/// path.
pub fn eval_info(model: &ModelSource) -> Value {
    serde_json::json!({
        "arch": model.arch,
        "checkpoint": model.checkpoint.display().to_string(),
        "model_config": serde_json::from_str::<Value>(&model.config.to_json_string())
            .unwrap_or(Value::Null),
    })
}

/// `eval_info.json`: which model the results in the folder belong to (DataComp's info.pkl
/// check). Written when absent; results of another model in the same folder are refused.
pub fn check_eval_info(out: &Path, model: &ModelSource) -> Result<()> {
    let path = out.join(EVAL_INFO_FILE);
    let ours = eval_info(model);
    if path.exists() {
        let theirs: Value = serde_json::from_str(
            &std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("{}: not JSON", path.display()))?;
        if theirs.get("checkpoint") != ours.get("checkpoint")
            || theirs.get("model_config") != ours.get("model_config")
        {
            bail!(
                "{} holds results of another model ({} / {}); this run evaluates {} / {}: \
                 use another --output_dir",
                out.display(),
                theirs["arch"],
                theirs["checkpoint"],
                ours["arch"],
                ours["checkpoint"]
            );
        }
        return Ok(());
    }
    crate::write_output(&path, serde_json::to_string_pretty(&ours)?.as_bytes())
}

/// Appends a failed task (`key`, dataset `name`, the error) to `out/eval_failures.jsonl`.
pub fn log_failure(out: &Path, key: &str, name: &str, err: &str) -> Result<()> {
    let path = out.join(FAILURES_FILE);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let when = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    writeln!(
        f,
        "{}",
        serde_json::json!({"key": key, "dataset": name, "error": err, "unix_time": when})
    )
    .with_context(|| format!("writing {}", path.display()))
}
