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

use crate::vmath;

/// Whether the fused kernels apply to `x`: CPU, f32, no gradient tracking.
pub fn applies(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32 && !x.track_op()
}

fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = s else {
        candle_core::bail!("{op}: expected f32");
    };
    let Some((start, end)) = l.contiguous_offsets() else {
        candle_core::bail!("{op}: expected a contiguous input");
    };
    Ok(&data[start..end])
}

/// A raw pointer to the output that tasks write disjoint parts of.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: the tasks sharing one write disjoint parts of the output: a (batch, head) column
// block in `attention`, a row block in `linear`.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

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
        let (d3i, di) = (d3 as isize, d as isize);
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
                    // scores[L×L] = scale · q[L×hd] · kᵀ[hd×L]
                    gemm::gemm(
                        len,
                        len,
                        hd,
                        scores.as_mut_ptr(),
                        1,
                        len as isize,
                        false,
                        q,
                        1,
                        d3i,
                        k,
                        d3i,
                        1,
                        0.0,
                        scale,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
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
                    gemm::gemm(
                        len,
                        hd,
                        len,
                        dst,
                        1,
                        di,
                        false,
                        scores.as_ptr(),
                        1,
                        len as isize,
                        v,
                        1,
                        d3i,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
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
    par: gemm::Parallelism,
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
        gemm::gemm(
            m,
            n,
            k,
            out,
            1,
            n as isize,
            false,
            x.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            k as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
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
                x_wt(&x[r0 * k..], w, dst, m, n, k, gemm::Parallelism::None);
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
                gemm::Parallelism::Rayon(threads),
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

    fn unfused(qkv: &Tensor, h: usize, mask: Option<&Tensor>) -> Tensor {
        crate::nn::attention_composed(qkv, h, mask).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn fused_attention_matches_the_composed_ops() {
        let dev = Device::Cpu;
        for (b, l, h, hd) in [(3, 7, 2, 4), (2, 50, 4, 16), (1, 1, 1, 8)] {
            let qkv = Tensor::randn(0f32, 1.0, (b, l, 3 * h * hd), &dev).unwrap();
            let got = attention(&qkv, h, None).unwrap();
            assert!(
                max_diff(&got, &unfused(&qkv, h, None)) < 1e-5,
                "{b} {l} {h} {hd}"
            );
            // Causal mask as the text tower builds it.
            let mask: Vec<f32> = (0..l * l)
                .map(|i| {
                    if i % l > i / l {
                        f32::NEG_INFINITY
                    } else {
                        0.0
                    }
                })
                .collect();
            let mask = Tensor::from_vec(mask, (l, l), &dev).unwrap();
            let got = attention(&qkv, h, Some(&mask)).unwrap();
            assert!(max_diff(&got, &unfused(&qkv, h, Some(&mask))) < 1e-5);
        }
    }

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
