//! A training run's folder (OpenCLIP's and DataComp's layout), as far as anything reads it
//! back: where the checkpoints are and how they are named, and the files that record the
//! architecture. `tic-train` writes this layout (`tic_train::state`, `tic_train::setup`, using
//! these names); `tic-eval --train_output_dir` finds a run's model in it
//! ([`find_checkpoint`], [`find_model_config`]). It is defined here, in the lowest crate that
//! reads it, so that the writer above uses the same names.
//!
//! ```text
//! {run}/checkpoints/epoch_latest.safetensors   the last weights (also epoch_latest.pt)
//! {run}/checkpoints/epoch_{N}.safetensors      the weights after epoch N (also epoch_N.pt)
//! {run}/model_config.json                      the architecture (OpenCLIP model-config JSON)
//! {run}/info.json                              {"model": NAME, …} (DataComp: scale_config.model)
//! {run}/params.txt                             OpenCLIP's `key: value` lines, `model: NAME`
//! ```

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};
use tic_model::ClipConfig;

/// The folder of a run's checkpoints.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// The last checkpoint of a run, in [`CHECKPOINTS_DIR`].
pub const LATEST_CHECKPOINT: &str = "epoch_latest.safetensors";
/// The architecture of a run (OpenCLIP model-config JSON).
pub const MODEL_CONFIG_FILE: &str = "model_config.json";
/// The run's summary, with its `model` name (DataComp's `info.json`).
pub const INFO_FILE: &str = "info.json";
/// OpenCLIP's parameter dump, one `key: value` per line.
pub const PARAMS_FILE: &str = "params.txt";

/// The checkpoint kept after epoch `epoch`: `epoch_{epoch}.safetensors`.
pub fn epoch_checkpoint(epoch: impl std::fmt::Display) -> String {
    format!("epoch_{epoch}.safetensors")
}

/// The epoch number of a checkpoint file name: `epoch_N.{safetensors,pt}`, `epoch_latest.*` is
/// `u64::MAX`; `None` for other names. Safetensors sort after `.pt` of the same epoch.
fn checkpoint_rank(name: &str) -> Option<(u64, u8)> {
    let (stem, fmt) = if let Some(s) = name.strip_suffix(".safetensors") {
        (s, 1)
    } else if let Some(s) = name.strip_suffix(".pt") {
        (s, 0)
    } else {
        return None;
    };
    let n = stem.strip_prefix("epoch_")?;
    if n == "latest" {
        return Some((u64::MAX, fmt));
    }
    n.parse().ok().map(|n| (n, fmt))
}

/// Finds the checkpoint of a training run: in `{dir}/checkpoints/` (else `{dir}/`),
/// `epoch_latest.safetensors`, `epoch_latest.pt`, else the highest `epoch_N.safetensors` /
/// `epoch_N.pt` (safetensors preferred for the same N).
pub fn find_checkpoint(dir: &Path) -> Result<PathBuf> {
    for d in [dir.join(CHECKPOINTS_DIR), dir.to_path_buf()] {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut best: Option<((u64, u8), PathBuf)> = None;
        for e in rd {
            let e = e.with_context(|| format!("listing {}", d.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(r) = checkpoint_rank(&name) {
                if best.as_ref().is_none_or(|(b, _)| r > *b) {
                    best = Some((r, e.path()));
                }
            }
        }
        if let Some((_, p)) = best {
            return Ok(p);
        }
    }
    bail!(
        "no checkpoint in {}: looked for checkpoints/epoch_latest.safetensors, \
         checkpoints/epoch_N.{{safetensors,pt}} (also directly in the folder)",
        dir.display()
    )
}

/// Finds the architecture of a training run in `dir`: `model_config.json` (OpenCLIP
/// model-config JSON, as tic-train writes it), else `info.json` with a `model` name (top level
/// or under `scale_config`, as DataComp's info), else OpenCLIP's `params.txt` (`model: NAME`).
pub fn find_model_config(dir: &Path) -> Result<(String, ClipConfig)> {
    let mc = dir.join(MODEL_CONFIG_FILE);
    if mc.is_file() {
        return Ok((mc.display().to_string(), ClipConfig::from_json_file(&mc)?));
    }
    let info = dir.join(INFO_FILE);
    if info.is_file() {
        let v: Value = serde_json::from_str(
            &std::fs::read_to_string(&info)
                .with_context(|| format!("reading {}", info.display()))?,
        )
        .with_context(|| format!("{}: not JSON", info.display()))?;
        let name = v
            .get("model")
            .or_else(|| v.get("scale_config").and_then(|s| s.get("model")))
            .and_then(Value::as_str)
            .with_context(|| {
                format!(
                    "{}: no \"model\" (or scale_config.model) name",
                    info.display()
                )
            })?;
        let cfg = ClipConfig::builtin(name).with_context(|| format!("in {}", info.display()))?;
        return Ok((name.to_string(), cfg));
    }
    let params = dir.join(PARAMS_FILE);
    if params.is_file() {
        let text = std::fs::read_to_string(&params)
            .with_context(|| format!("reading {}", params.display()))?;
        if let Some(name) = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("model:").map(str::trim))
        {
            let cfg =
                ClipConfig::builtin(name).with_context(|| format!("in {}", params.display()))?;
            return Ok((name.to_string(), cfg));
        }
    }
    bail!(
        "no model config for the run in {}: give --model-config, or put model_config.json \
         (OpenCLIP format), info.json ({{\"model\": \"ViT-B-16\"}}) or params.txt there",
        dir.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_discovery_prefers_latest_then_highest_epoch() {
        let d = tempfile::tempdir().unwrap();
        let ck = d.path().join("checkpoints");
        std::fs::create_dir_all(&ck).unwrap();
        for n in [
            "epoch_2.pt",
            "epoch_10.pt",
            "epoch_9.safetensors",
            "notes.txt",
        ] {
            std::fs::write(ck.join(n), b"").unwrap();
        }
        assert_eq!(find_checkpoint(d.path()).unwrap(), ck.join("epoch_10.pt"));
        std::fs::write(ck.join("epoch_10.safetensors"), b"").unwrap();
        assert_eq!(
            find_checkpoint(d.path()).unwrap(),
            ck.join("epoch_10.safetensors")
        );
        std::fs::write(ck.join("epoch_latest.pt"), b"").unwrap();
        assert_eq!(
            find_checkpoint(d.path()).unwrap(),
            ck.join("epoch_latest.pt")
        );
        let empty = tempfile::tempdir().unwrap();
        let err = find_checkpoint(empty.path()).unwrap_err().to_string();
        assert!(
            err.contains("no checkpoint") && err.contains("epoch_latest"),
            "{err}"
        );
    }

    #[test]
    fn model_config_discovery() {
        let d = tempfile::tempdir().unwrap();
        assert!(find_model_config(d.path()).is_err());
        std::fs::write(d.path().join("params.txt"), "lr: 0.001\nmodel: ViT-B-32\n").unwrap();
        assert_eq!(find_model_config(d.path()).unwrap().0, "ViT-B-32");
        std::fs::write(
            d.path().join("info.json"),
            r#"{"scale_config": {"model": "ViT-B-16"}}"#,
        )
        .unwrap();
        let (name, cfg) = find_model_config(d.path()).unwrap();
        assert_eq!((name.as_str(), cfg.vision_cfg.patch_size), ("ViT-B-16", 16));
        let tiny = ClipConfig::builtin("tiny-test").unwrap();
        std::fs::write(d.path().join("model_config.json"), tiny.to_json_string()).unwrap();
        assert_eq!(find_model_config(d.path()).unwrap().1, tiny);
        std::fs::write(d.path().join("model_config.json"), "{").unwrap();
        let err = format!("{:#}", find_model_config(d.path()).unwrap_err());
        assert!(err.contains("model_config.json"), "{err}");
    }
}
