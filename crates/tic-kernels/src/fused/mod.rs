//! Memory-lean fused training ops with their own backward: LayerNorm, multi-head attention,
//! the biased linear layer (with the MLP's GELU) and the contrastive cross-entropy, for CPU f32
//! training graphs, with CUDA kernels (f32 and bf16) behind an explicit switch.
//!
//! Candle records every intermediate of a composed op in the autograd graph and keeps it until
//! the backward pass: a composed LayerNorm keeps five `[B, L, D]` tensors, a composed attention
//! the permuted q/k/v copies, the scores and every stage of the softmax, and a linear layer
//! with a bias keeps the product before the bias as well as after it. Each op here is one graph
//! node that keeps only its inputs and output (and, for LayerNorm, the per-row mean and
//! reciprocal standard deviation), and recomputes the rest in its backward pass, as PyTorch's
//! native kernels do:
//!
//! - [`layer_norm`]: saves mean and rstd per row, not the normalised tensor;
//! - [`attention`]: scores, scaling, mask, softmax and the value product in one op; the
//!   backward pass recomputes the softmax from q and k (one extra `q·kᵀ` per head);
//! - [`linear`]: `x·Wᵀ + b`, then exact GELU for the MLP's first layer (bias + GELU in the
//!   GEMM's epilogue), saving the pre-activation only where GELU needs it;
//! - [`shifted_diagonal_cross_entropy`]: the CLIP loss's cross-entropy over a logits matrix,
//!   keeping only the logits (the backward pass recomputes the softmax).
//!
//! The same kernels also run a whole residual block with its own backward pass and no graph
//! inside it ([`BlockSegment`], used through tic-model's `ResidualBlock::segment` by the
//! segment-by-segment training step of `tic_model::recompute`); the block is CPU-only.
//!
//! Each op's backward pass is an op of its own (one per direction), whose CPU kernel is the
//! host code above and whose CUDA kernel is in `kernels/fused.cu` (built into PTX by build.rs
//! under the `cuda` feature): LayerNorm, bias + GELU (on a GPU, [`linear`]'s product is
//! Candle's cuBLAS matmul), attention and the cross-entropy, f32 and bf16 with f32
//! arithmetic, every reduction in a fixed order (no atomics: the same bits on every run). The
//! CUDA kernels are proven on the CPU by emulation (the `kernel-emu` feature compiles the same
//! `fused.cu` with the C++ compiler, CUDA threads as host threads;
//! `tests/cuda_kernels_emulated.rs` compares them with the host kernels) and await a run on a
//! GPU (`fused_cuda_check` in `bench/gpu/train_throughput.sh`).
//!
//! Which path a model takes is decided per op call by [`enabled`]: the environment variable
//! `TIC_FUSED_OPS` (`auto`, the default: fused on the CPU only; `on`: also the CUDA kernels,
//! f32 and bf16, in a `cuda` build; `off`: Candle's composed ops everywhere), or [`with_mode`]
//! in tests. Under `auto` a GPU runs the composed ops, so nothing unvalidated runs on a card
//! unless asked for.

mod attention;
mod block;
mod cross_entropy;
#[cfg(feature = "cuda")]
mod cuda;
#[cfg(feature = "kernel-emu")]
pub mod emu;
#[cfg(any(feature = "cuda", feature = "kernel-emu"))]
mod kernels;
mod layer_norm;
mod linear;

pub use attention::attention;
pub use block::{BlockSegment, BlockTape, BlockTensors};
pub use cross_entropy::shifted_diagonal_cross_entropy;
pub use layer_norm::layer_norm;
pub use linear::linear;

use std::cell::Cell;
use std::sync::OnceLock;

use candle_core::{CpuStorage, DType, Result, Shape, Tensor};

use crate::gemm::{gemm, MatMut, MatRef, Parallelism, Scaling, Strides};
use crate::host::{contiguous_f32, ConstPtr, OutPtr};

/// Elements per rayon task of the fused ops' element-wise passes.
const CHUNK: usize = 1 << 15;

/// Whether the fused training ops run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Fused where a kernel exists and is validated (CPU f32): the default.
    Auto,
    /// Fused wherever a kernel exists: also CUDA f32 and bf16 in a `cuda` build (kernels
    /// proven on the CPU by emulation, not yet on a GPU).
    On,
    /// Candle's composed ops everywhere.
    Off,
}

impl Mode {
    /// Parses `auto`, `on` or `off` (also `1`/`0`, `true`/`false`).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Some(Self::Auto),
            "on" | "1" | "true" => Some(Self::On),
            "off" | "0" | "false" => Some(Self::Off),
            _ => None,
        }
    }
}

thread_local! {
    static OVERRIDE: Cell<Option<Mode>> = const { Cell::new(None) };
}

/// The process-wide mode from `TIC_FUSED_OPS` (read once; an unknown value is reported on
/// stderr and treated as `auto`).
pub fn env_mode() -> Mode {
    static MODE: OnceLock<Mode> = OnceLock::new();
    *MODE.get_or_init(|| match std::env::var("TIC_FUSED_OPS") {
        Ok(v) => Mode::parse(&v).unwrap_or_else(|| {
            eprintln!("TIC_FUSED_OPS={v:?}: expected auto, on or off; using auto");
            Mode::Auto
        }),
        Err(_) => Mode::Auto,
    })
}

/// Runs `f` with `mode` in place of [`env_mode`] on this thread (the model's ops are built on
/// the calling thread), e.g. to compare fused and composed training in one process.
pub fn with_mode<T>(mode: Mode, f: impl FnOnce() -> T) -> T {
    let prev = OVERRIDE.with(|o| o.replace(Some(mode)));
    let out = f();
    OVERRIDE.with(|o| o.set(prev));
    out
}

/// The mode in effect on this thread.
pub fn mode() -> Mode {
    OVERRIDE.with(|o| o.get()).unwrap_or_else(env_mode)
}

/// Whether a fused training op applies to these operands: the mode allows it, at least one
/// operand is part of an autograd graph (inference has its own kernels in
/// [`crate::cpu_kernels`]), all share one device and dtype, and a kernel exists for them: f32 on
/// the CPU (modes `auto` and `on`), or f32 or bf16 on a CUDA device in a `cuda` build (mode
/// `on` only).
pub fn enabled(operands: &[&Tensor]) -> bool {
    applies(operands, true)
}

/// As [`enabled`], for the host kernels only (CPU f32): the residual block's own backward
/// pass, which has no CUDA kernels.
pub fn enabled_host(operands: &[&Tensor]) -> bool {
    applies(operands, false)
}

/// [`enabled`]'s rule, with CUDA kernels considered only when `cuda_kernels`.
fn applies(operands: &[&Tensor], cuda_kernels: bool) -> bool {
    let mode = mode();
    mode != Mode::Off
        && operands.iter().any(|t| t.track_op())
        && uniform(operands)
        && operands.iter().all(|t| {
            (t.device().is_cpu() && t.dtype() == DType::F32)
                || (cuda_kernels
                    && mode == Mode::On
                    && cfg!(feature = "cuda")
                    && t.device().is_cuda()
                    && matches!(t.dtype(), DType::F32 | DType::BF16))
        })
}

/// Whether all operands share the first one's device and dtype.
fn uniform(operands: &[&Tensor]) -> bool {
    operands
        .windows(2)
        .all(|p| p[0].dtype() == p[1].dtype() && p[0].device().same_device(p[1].device()))
}

/// Runs `f` on the f32 values of a CPU tensor (made contiguous first if it is not), borrowing
/// its storage: backward passes read their saved operands without copying them.
fn with_host<R>(t: &Tensor, op: &str, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        candle_core::Storage::Cpu(s) => f(contiguous_f32(s, layout, op)?),
        _ => candle_core::bail!("{op}: expected a CPU tensor"),
    }
}

/// A backward op's gradients packed into one flat host output `[first; tails…]` (an op has one
/// output; the caller splits it with [`unpack`]).
fn packed(mut first: Vec<f32>, tails: impl IntoIterator<Item = Vec<f32>>) -> (CpuStorage, Shape) {
    for tail in tails {
        first.extend(tail);
    }
    let len = first.len();
    (CpuStorage::F32(first), Shape::from(len))
}

/// Splits a packed output (see [`packed`]) into tensors of `shapes`, in order.
fn unpack<const N: usize>(packed: &Tensor, shapes: [&Shape; N]) -> Result<[Option<Tensor>; N]> {
    let mut parts = [const { None }; N];
    let mut at = 0;
    for (part, shape) in parts.iter_mut().zip(shapes) {
        let len = shape.elem_count();
        *part = Some(packed.narrow(0, at, len)?.reshape(shape)?);
        at += len;
    }
    Ok(parts)
}

/// A copy of `src` made in parallel chunks of `chunk` values, each chunk then handed to
/// `then(offset, chunk)` while it is still in cache. Large activations are copied on the
/// workers instead of by one serial `memcpy` (and page faults) on the calling thread.
pub(crate) fn par_copy_then(
    src: &[f32],
    chunk: usize,
    then: impl Fn(usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    par_copy_then_reserving(src, 0, chunk, then)
}

/// [`par_copy_then`] into a buffer with room for `extra` more values, for an op that appends
/// to the copy (e.g. a bias gradient after the input gradient) without reallocating it.
pub(crate) fn par_copy_then_reserving(
    src: &[f32],
    extra: usize,
    chunk: usize,
    then: impl Fn(usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    use rayon::prelude::*;
    let chunk = chunk.max(1);
    let mut out = Vec::<f32>::with_capacity(src.len() + extra);
    out.spare_capacity_mut()[..src.len()]
        .par_chunks_mut(chunk)
        .zip(src.par_chunks(chunk))
        .enumerate()
        .for_each(|(i, (dst, s))| {
            // SAFETY: `dst` and `s` have the same length and do not overlap (`out` is a new
            // buffer); once all `s.len()` values are written, `dst` is an initialised
            // `[f32]` (MaybeUninit<f32> has f32's layout).
            let dst = unsafe {
                std::ptr::copy_nonoverlapping(s.as_ptr(), dst.as_mut_ptr().cast::<f32>(), s.len());
                &mut *(dst as *mut [std::mem::MaybeUninit<f32>] as *mut [f32])
            };
            then(i * chunk, dst);
        });
    // SAFETY: the tasks above initialised all `src.len()` values.
    unsafe { out.set_len(src.len()) };
    out
}

/// `len` zeros, written in parallel chunks (`vec![0.0; len]` on a reused heap block is one
/// serial `memset` on the calling thread).
pub(crate) fn par_zeros(len: usize) -> Vec<f32> {
    par_zeros_reserving(len, 0)
}

/// [`par_zeros`] in a buffer with room for `extra` more values (see
/// [`par_copy_then_reserving`]).
pub(crate) fn par_zeros_reserving(len: usize, extra: usize) -> Vec<f32> {
    use rayon::prelude::*;
    let mut out = Vec::<f32>::with_capacity(len + extra);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(CHUNK)
        .for_each(|c| c.fill(std::mem::MaybeUninit::new(0.0)));
    // SAFETY: the tasks above initialised all `len` values.
    unsafe { out.set_len(len) };
    out
}

/// Below this many output rows per thread, [`matmul`] lets one GEMM thread itself instead of
/// giving each thread a block of rows.
const MIN_ROWS_PER_THREAD: usize = 64;

/// `lhs[m×k] · rhs[k×n]` into a new row-major `[m, n]` buffer, for strided views: one block of
/// output rows per thread, each a single-threaded GEMM (no synchronisation inside the GEMM), or
/// the GEMM's own threading for few rows.
///
/// # Safety
/// `lhs` and `rhs` must be valid for the strided `m×k` and `k×n` extents they are given.
pub(crate) unsafe fn matmul(
    (m, n, k): (usize, usize, usize),
    lhs: *const f32,
    lhs_strides: Strides,
    rhs: *const f32,
    rhs_strides: Strides,
) -> Vec<f32> {
    use rayon::prelude::*;
    let mut out = Vec::<f32>::with_capacity(m * n);
    let threads = rayon::current_num_threads();
    let per_thread = m.div_ceil(threads.max(1));
    let (lhs_p, out_p) = (ConstPtr(lhs), OutPtr(out.as_mut_ptr()));
    let rhs_p = ConstPtr(rhs);
    if threads > 1 && per_thread >= MIN_ROWS_PER_THREAD {
        (0..threads).into_par_iter().for_each(|t| {
            let r0 = t * per_thread;
            if r0 >= m {
                return;
            }
            let rows = per_thread.min(m - r0);
            let (l, o, r) = (lhs_p, out_p, rhs_p);
            // SAFETY: rows r0..r0+rows of lhs and of the output lie inside the extents the
            // caller vouched for; no other task writes these output rows.
            unsafe {
                gemm(
                    (rows, n, k),
                    MatMut::new(o.0.add(r0 * n), Strides::row_major(n)),
                    MatRef::new(l.0.add(r0 * lhs_strides.row), lhs_strides),
                    MatRef::new(r.0, rhs_strides),
                    Scaling::product(1.0),
                    Parallelism::None,
                )
            };
        });
    } else {
        // SAFETY: per this function's contract; the output holds m × n values.
        unsafe {
            gemm(
                (m, n, k),
                MatMut::new(out.as_mut_ptr(), Strides::row_major(n)),
                MatRef::new(lhs, lhs_strides),
                MatRef::new(rhs, rhs_strides),
                Scaling::product(1.0),
                Parallelism::Rayon(threads),
            )
        };
    }
    // SAFETY: the GEMMs above wrote all m × n values (beta·product, dst not read).
    unsafe { out.set_len(m * n) };
    out
}
