//! Fused CPU inference kernels (f32, no autograd) for the two places where Candle's generic ops
//! leave most of the time on the table in a ViT forward pass:
//!
//! - [`attention`]: multi-head self-attention straight from the packed `in_proj` output
//!   `[B, L, 3·D]` to the merged heads `[B, L, D]`: one task per (batch, head) on the rayon
//!   pool, each running `q·kᵀ`, the mask, a row softmax and `·v` with single-threaded GEMMs on
//!   strided views (no permute/contiguous copies, no tiny multi-threaded GEMMs);
//! - [`linear`]: `x·Wᵀ + b` with one row block per thread (a single-threaded GEMM, then the
//!   bias and, for the MLP's first layer, the exact GELU on that block's rows, vectorised: the
//!   `erf` approximation of PyTorch's CPU GELU, within 2e-7 of the exact value), instead of a
//!   GEMM, a single-threaded broadcast add into a new tensor and a single-threaded scalar GELU.
//!
//! Outputs are allocated without a zero fill (the GEMMs write every value); see also
//! [`crate::heap`] for why large outputs should not be fresh `mmap`s.
//!
//! The model uses them only for CPU f32 tensors that track no gradient (evaluation,
//! embedding); training graphs keep Candle's differentiable ops.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::gemm::{gemm, MatMut, MatRef, Parallelism, Scaling, Strides};
use crate::host::{contiguous_f32, OutPtr};
use crate::vmath;

/// Whether the fused kernels apply to `x`: CPU, f32, no gradient tracking.
pub fn applies(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32 && !x.track_op()
}

/// The attention forward kernel (also the forward pass of [`crate::fused::attention`]).
pub(crate) struct FusedAttention {
    /// Number of heads.
    pub(crate) heads: usize,
    /// Additive `[L, L]` mask (causal text tower), row-major.
    pub(crate) mask: Option<Vec<f32>>,
}

impl FusedAttention {
    /// The kernel for `heads` heads and an optional additive `[L, L]` mask.
    pub(crate) fn new(heads: usize, mask: Option<&Tensor>) -> Result<Self> {
        let mask = mask
            .map(|m| m.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>())
            .transpose()?;
        Ok(Self { heads, mask })
    }

    /// The merged heads `[B, L, D]` of the packed `qkv` `[B, L, 3·D]` (`dims` = (B, L, 3·D)),
    /// row-major host values.
    pub(crate) fn forward_host(
        &self,
        qkv: &[f32],
        (b, len, d3): (usize, usize, usize),
    ) -> Result<Vec<f32>> {
        let d = d3 / 3;
        let h = self.heads;
        let hd = d / h;
        if d3 % 3 != 0 || d % h != 0 {
            candle_core::bail!("fused attention: width {d3} is not 3 × heads {h} × head size");
        }
        if let Some(m) = &self.mask {
            if m.len() != len * len {
                candle_core::bail!("fused attention: mask of {} for length {len}", m.len());
            }
        }
        let scale = (hd as f32).powf(-0.5);
        // Every value is written by the GEMMs below (no zero fill needed).
        let mut out = Vec::<f32>::with_capacity(b * len * d);
        let out_ptr = OutPtr(out.as_mut_ptr());
        (0..b * h).into_par_iter().for_each_init(
            || (vec![0f32; len * len], vec![0f32; len]),
            |(scores, inv_sums), task| {
                let (bi, hi) = (task / h, task % h);
                let base = qkv[bi * len * d3..].as_ptr();
                // SAFETY: all views stay inside this batch row block of `qkv` (L × 3D) and
                // the output block of (bi, hi) (L × hd at stride D), which no other task
                // touches; `scores` is this task's own L × L buffer.
                unsafe {
                    let q = base.add(hi * hd);
                    let k = base.add(d + hi * hd);
                    head_scores(scores, q, k, (len, hd, d3), scale);
                }
                for (r, row) in scores.chunks_mut(len).enumerate() {
                    let mask = self.mask.as_ref().map(|m| &m[r * len..(r + 1) * len]);
                    let sum = vmath::exp_shifted_row(row, mask);
                    // Softmax's division is applied to the (narrower) output row below.
                    inv_sums[r] = if sum > 0.0 { 1.0 / sum } else { 0.0 };
                }
                let o = out_ptr;
                // SAFETY: as above; `dst` is the (bi, hi) block of the output.
                unsafe {
                    let v = base.add(2 * d + hi * hd);
                    let dst = o.0.add(bi * len * d + hi * hd);
                    // out[L×hd] = scores[L×L] · v[L×hd]
                    gemm(
                        (len, hd, len),
                        MatMut::new(dst, Strides::row_major(d)),
                        MatRef::new(scores.as_ptr(), Strides::row_major(len)),
                        MatRef::new(v, Strides::row_major(d3)),
                        Scaling::product(1.0),
                        Parallelism::None,
                    );
                    // out rows ·= 1 / Σ exp: the hd-wide rows of this (bi, hi) block.
                    for (r, s) in inv_sums.iter().enumerate() {
                        vmath::scale(std::slice::from_raw_parts_mut(dst.add(r * d), hd), *s);
                    }
                }
            },
        );
        // SAFETY: the tasks above wrote every (batch, head) block, i.e. all b·len·d values.
        unsafe { out.set_len(b * len * d) };
        Ok(out)
    }
}

/// `scores[L×L] = scale · q·kᵀ` for one head: `q` and `k` are `L` rows of `hd` values, `d3`
/// apart (a head's column blocks of packed `qkv`), `dims` = (L, hd, d3). Single-threaded (one
/// task per head). The first step of the attention forward pass, and of its backward pass
/// (which recomputes the softmax).
///
/// # Safety
/// `q` and `k` must be valid for `L` rows of `hd` values at stride `d3`; `scores` must hold
/// `L × L` values.
pub(crate) unsafe fn head_scores(
    scores: &mut [f32],
    q: *const f32,
    k: *const f32,
    (len, hd, d3): (usize, usize, usize),
    scale: f32,
) {
    debug_assert!(scores.len() >= len * len);
    // SAFETY: per this function's contract.
    unsafe {
        gemm(
            (len, len, hd),
            MatMut::new(scores.as_mut_ptr(), Strides::row_major(len)),
            MatRef::new(q, Strides::row_major(d3)),
            MatRef::new(k, Strides::transposed(d3)),
            Scaling::product(scale),
            Parallelism::None,
        )
    };
}

impl CustomOp1 for FusedAttention {
    fn name(&self) -> &'static str {
        "tic-fused-attention"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, len, d3) = l.shape().dims3()?;
        let qkv = contiguous_f32(s, l, self.name())?;
        let out = self.forward_host(qkv, (b, len, d3))?;
        Ok((CpuStorage::F32(out), Shape::from((b, len, d3 / 3))))
    }
}

/// Multi-head self-attention from the packed projection `qkv` `[B, L, 3·D]` (q; k; v, heads
/// contiguous within each, as `nn.MultiheadAttention`'s `in_proj`) to `[B, L, D]`, with an
/// optional additive `[L, L]` mask. Same math as the unfused path (q scaled by `hd^-0.5`
/// inside the GEMM, softmax in f32).
pub fn attention(qkv: &Tensor, heads: usize, mask: Option<&Tensor>) -> Result<Tensor> {
    qkv.contiguous()?
        .apply_op1_no_bwd(&FusedAttention::new(heads, mask)?)
}

struct FusedLinear {
    bias: Option<Vec<f32>>,
    gelu: bool,
}

impl FusedLinear {
    /// Bias and GELU (as configured) on whole `n`-wide output rows.
    fn epilogue(&self, rows: &mut [f32], n: usize) {
        if self.bias.is_some() || self.gelu {
            vmath::bias_gelu_rows(rows, n, self.bias.as_deref(), self.gelu);
        }
    }
}

/// Below this many rows per thread, [`linear`] lets the GEMM parallelise internally instead of
/// splitting rows across threads.
const MIN_ROWS_PER_THREAD: usize = 256;

/// `out[m×n] = x[m×k] · wᵀ` for row-major `x` and `w` (`n×k`): MKL's SGEMM with the `mkl`
/// feature (which threads itself; `par` unused), else the `gemm` crate.
///
/// # Safety
/// `out` must be valid for `m·n` writes; `x` and `w` must hold `m·k` and `n·k` values.
unsafe fn x_wt(
    x: &[f32],
    w: &[f32],
    out: *mut f32,
    m: usize,
    n: usize,
    k: usize,
    par: Parallelism,
) {
    debug_assert!(x.len() >= m * k && w.len() >= n * k);
    #[cfg(feature = "mkl")]
    {
        let _ = par;
        mkl::x_wt(x, w, out, m, n, k);
    }
    #[cfg(not(feature = "mkl"))]
    // SAFETY: per this function's contract; w (n × k row-major) is read as its transpose.
    unsafe {
        gemm(
            (m, n, k),
            MatMut::new(out, Strides::row_major(n)),
            MatRef::new(x.as_ptr(), Strides::row_major(k)),
            MatRef::new(w.as_ptr(), Strides::transposed(k)),
            Scaling::product(1.0),
            par,
        );
    }
}

impl candle_core::CustomOp2 for FusedLinear {
    fn name(&self) -> &'static str {
        "tic-fused-linear"
    }

    fn cpu_fwd(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        sw: &CpuStorage,
        lw: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (rows, k) = lx.shape().dims2()?;
        let (n, kw) = lw.shape().dims2()?;
        if k != kw {
            candle_core::bail!("fused linear: input width {k}, weight [{n}, {kw}]");
        }
        let x = contiguous_f32(sx, lx, self.name())?;
        let w = contiguous_f32(sw, lw, self.name())?;
        let out = linear_rows(x, w, rows, n, k, self.bias.as_deref(), self.gelu);
        Ok((CpuStorage::F32(out), Shape::from((rows, n))))
    }
}

/// `x·wᵀ (+ bias) (then GELU)` for row-major `x` `[rows, k]` and `w` `[n, k]`, into a new
/// `[rows, n]` buffer: one row block per thread with the epilogue on its own rows, or the
/// GEMM's own threading for few rows. Shared by the inference op and the training op
/// ([`crate::fused::linear`]).
pub(crate) fn linear_rows(
    x: &[f32],
    w: &[f32],
    rows: usize,
    n: usize,
    k: usize,
    bias: Option<&[f32]>,
    gelu: bool,
) -> Vec<f32> {
    let epilogue = FusedLinear {
        bias: bias.map(<[f32]>::to_vec),
        gelu,
    };
    // The GEMM writes every value (β = 0, dst not read): no zero fill.
    let mut out = Vec::<f32>::with_capacity(rows * n);
    let threads = rayon::current_num_threads();
    let per_thread = rows.div_ceil(threads);
    if cfg!(not(feature = "mkl")) && threads > 1 && per_thread >= MIN_ROWS_PER_THREAD {
        // One row block per thread, each a single-threaded GEMM followed by the epilogue on
        // its own rows: ~6 % per ViT-B-16 block (batch 32, 2 threads) over the GEMM's
        // internal threading, which synchronises inside the GEMM, and no second pass.
        let out_ptr = OutPtr(out.as_mut_ptr());
        (0..threads).into_par_iter().for_each(|t| {
            let r0 = t * per_thread;
            if r0 >= rows {
                return;
            }
            let m = per_thread.min(rows - r0);
            let o = out_ptr;
            // SAFETY: rows r0..r0+m of x (m × k) and of out (m × n) are inside the checked
            // shapes; no other task touches these output rows.
            unsafe {
                let dst = o.0.add(r0 * n);
                x_wt(&x[r0 * k..], w, dst, m, n, k, Parallelism::None);
                epilogue.epilogue(std::slice::from_raw_parts_mut(dst, m * n), n);
            }
        });
        // SAFETY: the row blocks above cover all rows × n values.
        unsafe { out.set_len(rows * n) };
    } else {
        // SAFETY: out has room for rows × n values, all of which the GEMM writes.
        unsafe {
            x_wt(
                x,
                w,
                out.as_mut_ptr(),
                rows,
                n,
                k,
                Parallelism::Rayon(threads),
            );
            out.set_len(rows * n);
        }
        let rows_per_task = (1 << 14) / n.max(1) + 1;
        out.par_chunks_mut(rows_per_task * n)
            .for_each(|chunk| epilogue.epilogue(chunk, n));
    }
    out
}

/// MKL's SGEMM (feature `mkl`; the symbols come from Candle's `intel-mkl-src` link).
#[cfg(feature = "mkl")]
mod mkl {
    use std::os::raw::c_char;

    extern "C" {
        fn sgemm_(
            transa: *const c_char,
            transb: *const c_char,
            m: *const i32,
            n: *const i32,
            k: *const i32,
            alpha: *const f32,
            a: *const f32,
            lda: *const i32,
            b: *const f32,
            ldb: *const i32,
            beta: *const f32,
            c: *mut f32,
            ldc: *const i32,
        );
    }

    /// `out[rows×n] = x[rows×k] · wᵀ` for row-major `x` and `w` (`n×k`). In column-major
    /// terms: `outᵀ = w · xᵀ`, i.e. SGEMM('T', 'N', n, rows, k) on the same buffers.
    ///
    /// # Safety
    /// `out` must be valid for `rows·n` writes.
    pub unsafe fn x_wt(x: &[f32], w: &[f32], out: *mut f32, rows: usize, n: usize, k: usize) {
        assert!(x.len() >= rows * k && w.len() >= n * k);
        let (m_, n_, k_) = (n as i32, rows as i32, k as i32);
        let (t, nt) = (b'T' as c_char, b'N' as c_char);
        // SAFETY: x and w hold the sizes asserted above, out per the contract; leading
        // dimensions are the row lengths of the row-major matrices.
        unsafe {
            sgemm_(
                &t,
                &nt,
                &m_,
                &n_,
                &k_,
                &1.0,
                w.as_ptr(),
                &k_,
                x.as_ptr(),
                &k_,
                &0.0,
                out,
                &m_,
            );
        }
    }
}

/// `x·Wᵀ + b` (then exact GELU with `gelu`) for `x` `[rows, in]` and `W` `[out, in]`.
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, gelu: bool) -> Result<Tensor> {
    let bias = bias.map(|b| b.to_vec1::<f32>()).transpose()?;
    x.contiguous()?
        .apply_op2_no_bwd(&weight.contiguous()?, &FusedLinear { bias, gelu })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use tic_testkit::tensors::max_abs_diff as max_diff;

    #[test]
    fn fused_linear_matches_matmul_bias_gelu() {
        let dev = Device::Cpu;
        // 37 rows: the GEMM's own threading; 1000 and 770 rows on 3 threads: one row block
        // per thread (334/334/332 and 257/257/256 rows), the epilogue on each block.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for rows in [37, 1000, 770] {
            let x = Tensor::randn(0f32, 1.0, (rows, 24), &dev).unwrap();
            let w = Tensor::randn(0f32, 0.3, (50, 24), &dev).unwrap();
            let b = Tensor::randn(0f32, 1.0, 50, &dev).unwrap();
            let plain = x.matmul(&w.t().unwrap()).unwrap();
            let with_b = plain.broadcast_add(&b).unwrap();
            let g = with_b.gelu_erf().unwrap();
            pool.install(|| {
                assert!(max_diff(&linear(&x, &w, None, false).unwrap(), &plain) < 1e-5);
                assert!(max_diff(&linear(&x, &w, Some(&b), false).unwrap(), &with_b) < 1e-5);
                assert!(max_diff(&linear(&x, &w, Some(&b), true).unwrap(), &g) < 1e-5);
            });
        }
    }
}
