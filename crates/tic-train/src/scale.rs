//! `--scale`: DataComp's scale configs with the TiC patch (`scale_configs.py`), plus `tiny`.

use anyhow::{bail, Result};
use serde::Serialize;

/// One scale: model, global batch, learning rate, warmup and per-step sample budget.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScaleConfig {
    /// Scale name.
    pub name: &'static str,
    /// OpenCLIP model name.
    pub model: &'static str,
    /// Global batch size.
    pub batch_size: u64,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Warmup steps.
    pub warmup: u64,
    /// Samples seen per training run (per time step of TiC).
    pub train_num_samples: u64,
    /// `beta2` override (None: OpenCLIP's ViT default 0.98).
    pub beta2: Option<f64>,
}

/// Every scale `--scale` accepts.
pub const SCALES: &[ScaleConfig] = &[
    ScaleConfig {
        name: "tic_debug",
        model: "ViT-B-32",
        batch_size: 1024,
        learning_rate: 1e-4,
        warmup: 500,
        train_num_samples: 1_024_000,
        beta2: None,
    },
    // The TiC patch gives ViT-B-32 here although its README says ViT-B/16 for all scales; we
    // follow the patch (use --model ViT-B-16 to follow the README).
    ScaleConfig {
        name: "tic_medium",
        model: "ViT-B-32",
        batch_size: 4096,
        learning_rate: 5e-4,
        warmup: 500,
        train_num_samples: 4096 * 4500,
        beta2: None,
    },
    ScaleConfig {
        name: "tic_large",
        model: "ViT-B-16",
        batch_size: 8192,
        learning_rate: 5e-4,
        warmup: 500,
        train_num_samples: 8192 * 22500,
        beta2: None,
    },
    ScaleConfig {
        name: "tic_xlarge",
        model: "ViT-B-16",
        batch_size: 90112,
        learning_rate: 1e-3,
        warmup: 10000,
        train_num_samples: 90112 * 20500,
        beta2: None,
    },
    // CPU tests and the demo: the `tiny` model (see [`model_config`]).
    ScaleConfig {
        name: "tiny",
        model: "tiny",
        batch_size: 32,
        learning_rate: 2e-3,
        warmup: 10,
        train_num_samples: 32 * 120,
        beta2: None,
    },
];

/// Resolves `--model`: a model-config JSON file, `tiny` (tic-model's `tiny-test` — image 32,
/// patch 8, widths 64, 2+2 layers — with a text context of 32 tokens, which makes CPU training
/// several times faster; the synthetic captions are far shorter), or an OpenCLIP built-in name.
pub fn model_config(name: &str) -> Result<tic_model::ClipConfig> {
    let p = std::path::Path::new(name);
    if p.is_file() {
        return tic_model::ClipConfig::from_json_file(p);
    }
    if name == "tiny" {
        let mut c = tic_model::ClipConfig::builtin("tiny-test")?;
        c.text_cfg.context_length = 32;
        c.validate()?;
        return Ok(c);
    }
    tic_model::ClipConfig::builtin(name)
}

/// Looks a scale up by name.
pub fn scale(name: &str) -> Result<&'static ScaleConfig> {
    match SCALES.iter().find(|s| s.name == name) {
        Some(s) => Ok(s),
        None => bail!(
            "unknown --scale {name:?}; available: {}",
            SCALES.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
        ),
    }
}
