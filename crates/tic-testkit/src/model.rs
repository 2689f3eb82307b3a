//! Tiny random CLIP models saved as training runs (feature `model`): what the end-to-end tests
//! of `tic-eval`, and of the tools that read its results, evaluate. One place, so every such
//! test saves the model in the layout `tic_eval::run_folder` reads.

use candle_core::{DType, Device};
use std::path::Path;
use tic_model::{checkpoint, init, ClipConfig};

/// Saves the built-in `tiny-test` CLIP as a training run in `run_dir`: `model_config.json`
/// and, per `(name, seed)` of `checkpoints`, `checkpoints/{name}.safetensors` holding freshly
/// initialised weights drawn from `seed` (so `epoch_latest` is the one tic-eval picks).
pub fn tiny_run(run_dir: &Path, checkpoints: &[(&str, u64)]) {
    let cfg = ClipConfig::builtin("tiny-test").unwrap();
    std::fs::create_dir_all(run_dir.join("checkpoints")).unwrap();
    std::fs::write(run_dir.join("model_config.json"), cfg.to_json_string()).unwrap();
    for &(name, seed) in checkpoints {
        let sd = init::init_state_dict(&cfg, seed, DType::F32, &Device::Cpu).unwrap();
        checkpoint::write_safetensors_atomic(
            &sd,
            &run_dir.join(format!("checkpoints/{name}.safetensors")),
        )
        .unwrap();
    }
}
