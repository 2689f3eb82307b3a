//! OpenCLIP-exact CLIP in Candle.
//!
//! - [`ClipConfig`]: OpenCLIP model-config JSON and the built-in architectures.
//! - [`Clip`]: the model (OpenCLIP parameter names), built from a `candle_nn::VarBuilder`;
//!   [`init`] creates trainable, OpenCLIP-initialised parameters in a `VarMap`.
//! - [`Tokenizer`]: CLIP's BPE with OpenCLIP's cleaning, 77-token rows.
//! - [`preprocess`]: image decoding and OpenCLIP's eval / train transforms.
//! - [`embed`]: the embedding pipeline of `tic-embed` and `tic-eval` (decode threads + batched
//!   forward); [`embed_cli`]: `tic-embed`'s command line and run.
//! - [`device`]: the `--device` value of every binary (`cpu | cuda | cuda:N | auto`).
//! - [`checkpoint`]: loading OpenCLIP safetensors / `epoch_N.pt` / OpenAI HF weights, saving
//!   OpenCLIP-compatible safetensors.
//! - [`pretrained`]: OpenCLIP's pretrained names (`ARCH TAG`, `hf-hub:ORG/REPO`) resolved
//!   through the Hugging Face cache (and Hub).
//! - [`recompute`]: the segmented backward pass and gradient checkpointing.
//!
//! All model code is differentiable: LayerNorm and softmax switch to composed ops whenever their
//! input is part of an autograd graph (Candle's fused kernels drop gradients silently). The
//! hand-written kernels the layers call (fused training ops, CPU inference kernels, CUDA
//! sources) live in the `tic-kernels` crate below this one.

pub mod checkpoint;
pub mod clean;
pub mod config;
pub mod device;
pub mod embed;
pub mod embed_cli;
pub mod init;
pub mod model;
pub mod nn;
pub mod preprocess;
pub mod pretrained;
pub mod recompute;
pub mod tokenizer;

pub use config::ClipConfig;
pub use model::Clip;
pub use tokenizer::Tokenizer;

/// Writes an output file atomically (`tic_shards::atomic`: temp file + rename, mode 0644).
pub use tic_shards::atomic::write_file as write_output;
