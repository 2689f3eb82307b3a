//! The kernels under tic-model's CLIP: hand-written CPU and CUDA code that Candle's generic ops
//! do not provide, kept apart from the model so that the model's modules read as configuration
//! and layers, and the kernels can be tested (and emulated) on their own.
//!
//! - [`fused`]: memory-lean fused training ops with their own backward pass (LayerNorm,
//!   attention, linear + GELU, the contrastive cross-entropy, a whole residual block), CPU f32
//!   and CUDA f32/bf16 (`kernels/fused.cu`, the `cuda` feature; the `kernel-emu` feature runs
//!   the same CUDA source on host threads for tests), switched by `TIC_FUSED_OPS`;
//! - [`cpu_kernels`]: fused CPU inference kernels (attention, linear + bias + GELU);
//! - [`gemm`]: the one typed wrapper over the `gemm` crate's matrix product;
//! - [`heap`]: glibc heap settings for tensor-heavy processes.
//!
//! Nothing here knows the model: kernels take tensors, slices and plain parameters (widths,
//! heads, masks); tic-model decides when each one runs.

pub mod cpu_kernels;
pub mod fused;
pub mod gemm;
pub mod heap;
mod host;
mod vmath;
