//! OpenCLIP-exact CLIP in Candle.
//!
//! - [`ClipConfig`]: OpenCLIP model-config JSON and the built-in architectures.
//! - [`Clip`]: the model (OpenCLIP parameter names), built from a `candle_nn::VarBuilder`;
//!   [`init`] creates trainable, OpenCLIP-initialised parameters in a `VarMap`.
//! - [`Tokenizer`]: CLIP's BPE with OpenCLIP's cleaning, 77-token rows.
//! - [`preprocess`]: image decoding and OpenCLIP's eval / train transforms.
//! - [`checkpoint`]: loading OpenCLIP safetensors / `epoch_N.pt` / OpenAI HF weights, saving
//!   OpenCLIP-compatible safetensors.
//!
//! All model code is differentiable: LayerNorm and softmax switch to composed ops whenever their
//! input is part of an autograd graph (Candle's fused kernels drop gradients silently).

pub mod checkpoint;
pub mod clean;
pub mod config;
pub mod init;
pub mod model;
pub mod nn;
pub mod preprocess;
pub mod tokenizer;

pub use config::ClipConfig;
pub use model::Clip;
pub use tokenizer::Tokenizer;

/// Writes `bytes` to `path` atomically with `tic_shards::atomic` (temp file in the same folder,
/// then rename; parent folders created) and gives it the ordinary `0644` permissions (the temp
/// file is created `0600`).
pub fn write_output(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use anyhow::Context;
    tic_shards::atomic::write_atomic(path, bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("setting permissions of {}", path.display()))?;
    }
    Ok(())
}
