//! The run folder and the resumable training state: what is written where, and how a run
//! comes back after a kill.
//!
//! Layout under `{output_dir}/{exp_name}/` (DataComp's, written by rank 0 only):
//! - `checkpoints/epoch_N.safetensors`, `checkpoints/epoch_latest.safetensors`: model weights
//!   with OpenCLIP names (load with `open_clip.create_model(arch)` + `load_state_dict`);
//! - `checkpoints/train_state.json` + `checkpoints/state_stepNNNNNNNN.safetensors`: everything
//!   to resume exactly (weights, AdamW moments and per-parameter steps, step, epoch, every
//!   rank's data position; the RNG is a pure function of seed and position). The JSON is
//!   written last and names its tensor file, so a kill at any moment leaves a consistent pair;
//! - `metrics.jsonl`: one JSON line per optimizer step;
//! - `out.log`, `params.txt`, `params.yaml`, `model_config.json`, `info.json`, `compute.json`.
//!
//! `train_state.json`, `metrics.jsonl` and `compute.json` are typed in [`crate::records`]; the
//! names of the checkpoints and of the architecture files that `tic-eval` reads back are
//! `tic_eval::run_folder`'s.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use tic_eval::run_folder::{epoch_checkpoint, CHECKPOINTS_DIR, LATEST_CHECKPOINT};
use tic_model::checkpoint::save_varmap_safetensors;
use tic_model::ClipConfig;

use crate::optim::AdamW;
use crate::records::{self, MetricsRecord};

use crate::records::TrainState;

/// The run folder `{output_dir}/{exp_name}`. Only the writer (rank 0) creates or writes it;
/// other ranks' handles only log.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// Its path.
    pub root: PathBuf,
    /// True on the process that writes the run's files (rank 0).
    pub writer: bool,
    saved: SaveHook,
    /// `--log_local`: this rank's own log file (`out-{rank}.log`).
    local_log: Option<PathBuf>,
}

/// What runs after every checkpoint save (the object-store copy's upload trigger,
/// `crate::remote`); an error stops the run.
#[derive(Clone, Default)]
pub struct SaveHook(Option<Arc<dyn Fn() -> Result<()> + Send + Sync>>);

impl SaveHook {
    /// A hook calling `f`.
    pub fn new(f: impl Fn() -> Result<()> + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(f)))
    }
}

impl std::fmt::Debug for SaveHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "SaveHook(set)"
        } else {
            "SaveHook(none)"
        })
    }
}

impl RunDir {
    /// A run folder, created when needed (by the writer only).
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        Self::for_rank(root, 0)
    }

    /// The run folder as rank `rank` sees it: rank 0 creates and writes it.
    pub fn for_rank(root: impl Into<PathBuf>, rank: usize) -> Result<Self> {
        let root = root.into();
        let writer = rank == 0;
        if writer {
            std::fs::create_dir_all(root.join(CHECKPOINTS_DIR))
                .with_context(|| format!("creating {}", root.join(CHECKPOINTS_DIR).display()))?;
        }
        Ok(Self {
            root,
            writer,
            saved: SaveHook::default(),
            local_log: None,
        })
    }

    /// This run folder with `hook` called after every checkpoint save.
    pub fn with_save_hook(self, hook: SaveHook) -> Self {
        Self {
            saved: hook,
            ..self
        }
    }
    /// This run folder where, given `Some(rank)`, the rank also appends its log lines to
    /// `out-{rank}.log` (`--log_local`).
    pub fn with_local_log(self, rank: Option<usize>) -> Self {
        Self {
            local_log: rank.map(|r| self.root.join(crate::controls::local_log_name(r))),
            ..self
        }
    }
    /// `checkpoints/`.
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join(CHECKPOINTS_DIR)
    }
    /// `checkpoints/train_state.json`.
    pub fn state_json(&self) -> PathBuf {
        self.checkpoints().join(records::TRAIN_STATE_FILE)
    }
    /// `checkpoints/epoch_latest.safetensors`.
    pub fn latest(&self) -> PathBuf {
        self.checkpoints().join(LATEST_CHECKPOINT)
    }
    /// `metrics.jsonl`.
    pub fn metrics(&self) -> PathBuf {
        self.root.join(records::METRICS_FILE)
    }
    /// Appends a line to `out.log` and logs it (the writer); other ranks log at debug level.
    pub fn log(&self, line: &str) {
        if let Some(p) = &self.local_log {
            append_line(p, line);
        }
        if !self.writer {
            tracing::debug!("{line}");
            return;
        }
        tracing::info!("{line}");
        append_line(&self.root.join("out.log"), line);
    }
    /// Writes `bytes` to `name` in the run folder atomically (the writer only).
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        if self.writer {
            let p = self.root.join(name);
            tic_shards::atomic::write_atomic(&p, bytes)
                .with_context(|| format!("writing {}", p.display()))?;
        }
        Ok(())
    }
    /// Removes temporary files an interrupted save left in the run folder and in
    /// `checkpoints/` (the writer only); returns how many.
    pub fn remove_stale_temps(&self) -> Result<usize> {
        if !self.writer {
            return Ok(0);
        }
        let mut n = 0;
        for dir in [self.root.clone(), self.checkpoints()] {
            let k = tic_shards::atomic::remove_stale_temps(&dir)
                .with_context(|| format!("cleaning {}", dir.display()))?;
            if k > 0 {
                self.log(&format!(
                    "removed {k} temporary file(s) an interrupted save left in {}",
                    dir.display()
                ));
            }
            n += k;
        }
        Ok(n)
    }

    /// Drops the `metrics.jsonl` lines of steps after `step` (a killed run may have logged
    /// steps it never saved) and opens it for appending (the writer; `None` elsewhere).
    pub fn open_metrics(&self, step: u64) -> Result<Option<std::fs::File>> {
        if !self.writer {
            return Ok(None);
        }
        let path = self.metrics();
        if path.exists() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let kept: String = text
                .lines()
                .filter(|l| MetricsRecord::parse(l).is_ok_and(|r| r.step <= step))
                .map(|l| format!("{l}\n"))
                .collect();
            tic_shards::atomic::write_atomic(&path, kept.as_bytes())?;
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Some(f))
    }

    /// Appends one JSON line to `checkpoints/NAME` (the writer only).
    pub fn append_checkpoint_line(&self, name: &str, v: &serde_json::Value) -> Result<()> {
        if !self.writer {
            return Ok(());
        }
        let path = self.checkpoints().join(name);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        writeln!(f, "{v}").with_context(|| format!("writing {}", path.display()))
    }
}

/// Reads a `train_state.json` and its tensors.
pub fn read_state(json: &Path) -> Result<(TrainState, HashMap<String, Tensor>)> {
    let st = TrainState::read(json)?;
    let tpath = json.parent().unwrap_or(Path::new(".")).join(&st.tensors);
    let t = candle_core::safetensors::load(&tpath, &Device::Cpu)
        .with_context(|| format!("reading {} (named by {})", tpath.display(), json.display()))?;
    Ok((st, t))
}

/// Appends `line` to the log file `path` (its folder created when needed); logging never
/// stops a run, so a failure is ignored.
fn append_line(path: &Path, line: &str) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

/// What one checkpoint save writes.
pub struct Checkpoint<'a> {
    /// The model's configuration (names and shapes of the weights).
    pub config: &'a ClipConfig,
    /// The trainable weights.
    pub vars: &'a VarMap,
    /// The optimizer (its state is saved).
    pub opt: &'a AdamW,
    /// The state's step, epoch, positions, … (`tensors` is set by [`Checkpoint::save`]).
    pub state: TrainState,
    /// Also keep `epoch_{epoch}.safetensors`.
    pub keep_epoch: bool,
    /// With `keep_epoch`: then delete `epoch_{epoch-1}.safetensors` (OpenCLIP's
    /// `--delete-previous-checkpoint`; a resume never reads it).
    pub delete_previous: bool,
}

impl Checkpoint<'_> {
    /// Writes the weights for OpenCLIP, then the resumable state (tensors, then the JSON
    /// naming them), then removes older state tensors. Every file is written atomically.
    pub fn save(mut self, run: &RunDir) -> Result<()> {
        if !run.writer {
            return Ok(());
        }
        let ck = run.checkpoints();
        // 1. Model weights for OpenCLIP.
        save_varmap_safetensors(self.config, self.vars, &run.latest())?;
        if self.keep_epoch {
            tic_shards::atomic::copy_file(
                &run.latest(),
                &ck.join(epoch_checkpoint(self.state.epoch)),
            )?;
            if self.delete_previous && self.state.epoch > 1 {
                let prev = ck.join(epoch_checkpoint(self.state.epoch - 1));
                match std::fs::remove_file(&prev) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(e).with_context(|| format!("deleting {}", prev.display()))
                    }
                    _ => {}
                }
            }
        }
        // 2. The resumable state: tensors, then the JSON naming them.
        let mut t: HashMap<String, Tensor> = HashMap::new();
        for p in &self.opt.params {
            t.insert(
                format!("model/{}", p.name),
                p.var
                    .as_tensor()
                    .to_dtype(DType::F32)?
                    .to_device(&Device::Cpu)?,
            );
        }
        for (k, v) in self.opt.state_tensors()? {
            t.insert(k, v.to_device(&Device::Cpu)?.contiguous()?);
        }
        let tname = format!("state_step{:08}.safetensors", self.state.step);
        tic_model::checkpoint::write_safetensors_atomic(&t, &ck.join(&tname))?;
        self.state.tensors = tname.clone();
        tic_shards::atomic::write_atomic(run.state_json(), self.state.to_json().as_bytes())
            .with_context(|| format!("writing {}", run.state_json().display()))?;
        // 3. Older state tensors are now unreferenced.
        for e in std::fs::read_dir(&ck)? {
            let name = e?.file_name().to_string_lossy().into_owned();
            if name.starts_with("state_step") && name.ends_with(".safetensors") && name != tname {
                let _ = std::fs::remove_file(ck.join(name));
            }
        }
        // 4. The run folder's copy in an object store, if any, is told.
        match &run.saved.0 {
            Some(hook) => hook(),
            None => Ok(()),
        }
    }
}
