//! Multi-head self-attention from the packed `in_proj` output as one op: scores, scaling,
//! mask, softmax and the value product. The graph keeps only `qkv` (the op's input) and the
//! merged heads (its output); the backward pass recomputes each head's softmax from q and k,
//! as flash attention does, instead of keeping the `[B, H, L, L]` scores and the stages of a
//! composed softmax.

use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{mm, slice, OutPtr};
use crate::cpu_kernels::FusedAttention;
use crate::vmath;

struct FusedAttentionTrain {
    inner: FusedAttention,
}

impl CustomOp1 for FusedAttentionTrain {
    fn name(&self) -> &'static str {
        "tic-fused-attention-train"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        self.inner.cpu_fwd(s, l)
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (b, len, d3) = l.shape().dims3()?;
        let y =
            super::cuda::attention_forward((s, l), self.inner.heads, self.inner.mask.as_deref())?;
        Ok((y, Shape::from((b, len, d3 / 3))))
    }

    fn bwd(&self, qkv: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let dqkv = qkv.contiguous()?.apply_op3_no_bwd(
            &res.contiguous()?,
            &grad.contiguous()?,
            &FusedAttentionBackward { inner: &self.inner },
        )?;
        Ok(Some(dqkv))
    }
}

/// The backward pass of [`FusedAttentionTrain`] as an op over `(qkv, y, dy)` giving `dqkv`.
struct FusedAttentionBackward<'a> {
    inner: &'a FusedAttention,
}

impl CustomOp3 for FusedAttentionBackward<'_> {
    fn name(&self) -> &'static str {
        "tic-fused-attention-backward"
    }

    fn cpu_fwd(
        &self,
        sq: &CpuStorage,
        lq: &Layout,
        sy: &CpuStorage,
        ly: &Layout,
        sg: &CpuStorage,
        lg: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let dims = lq.shape().dims3()?;
        let (qkv, y, dy) = (
            slice(sq, lq, name)?,
            slice(sy, ly, name)?,
            slice(sg, lg, name)?,
        );
        let out = dims.0 * dims.1 * (dims.2 / 3);
        if y.len() != out || dy.len() != out {
            candle_core::bail!(
                "{name}: qkv {dims:?}, output {}, gradient {}",
                y.len(),
                dy.len()
            );
        }
        let dqkv = self.inner.backward_host(qkv, y, dy, dims);
        Ok((CpuStorage::F32(dqkv), lq.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        sq: &candle_core::CudaStorage,
        lq: &Layout,
        sy: &candle_core::CudaStorage,
        ly: &Layout,
        sg: &candle_core::CudaStorage,
        lg: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let dqkv = super::cuda::attention_backward(
            (sq, lq),
            (sy, ly),
            (sg, lg),
            self.inner.heads,
            self.inner.mask.as_deref(),
        )?;
        Ok((dqkv, lq.shape().clone()))
    }
}

impl FusedAttention {
    /// The gradient of the packed `qkv` `[B, L, 3·D]` (`dims`) given the forward pass's output
    /// `y` (merged heads, `[B, L, D]`) and its gradient `dy`: per (batch, head), the softmax is
    /// recomputed from q and k.
    pub(crate) fn backward_host(
        &self,
        qkv: &[f32],
        y: &[f32],
        dy: &[f32],
        (b, len, d3): (usize, usize, usize),
    ) -> Vec<f32> {
        let (d, h) = (d3 / 3, self.heads);
        let hd = d / h;
        let scale = (hd as f32).powf(-0.5);
        let mask = self.mask.as_deref();
        let mut dqkv = Vec::<f32>::with_capacity(b * len * d3);
        let out = OutPtr(dqkv.as_mut_ptr());
        (0..b * h).into_par_iter().for_each_init(
            || {
                (
                    vec![0f32; len * len],
                    vec![0f32; len * len],
                    vec![0f32; len],
                )
            },
            |(p, dp, dots), task| {
                let (bi, hi) = (task / h, task % h);
                let o = out;
                // SAFETY: the q, k, v column blocks of head `hi` in batch row
                // `bi` of `qkv` and of the output (L rows at stride 3D), and its
                // column block of `y` / `dy` (L rows at stride D): inside the
                // checked shapes, and no other task writes these output blocks.
                // `p`, `dp` are this task's own L × L buffers.
                unsafe {
                    let base = qkv.as_ptr().add(bi * len * d3 + hi * hd);
                    let (q, k, v) = (base, base.add(d), base.add(2 * d));
                    let dbase = o.0.add(bi * len * d3 + hi * hd);
                    let (dq, dk, dv) = (dbase, dbase.add(d), dbase.add(2 * d));
                    let yh = y.as_ptr().add(bi * len * d + hi * hd);
                    let dyh = dy.as_ptr().add(bi * len * d + hi * hd);
                    // P = softmax(scale·q·kᵀ + mask), as the forward pass.
                    mm(
                        (len, len, hd),
                        p.as_mut_ptr(),
                        len,
                        q,
                        (1, d3),
                        k,
                        (d3, 1),
                        scale,
                    );
                    for (r, row) in p.chunks_mut(len).enumerate() {
                        let m = mask.map(|m| &m[r * len..(r + 1) * len]);
                        let sum = vmath::exp_shifted_row(row, m);
                        vmath::scale(row, if sum > 0.0 { 1.0 / sum } else { 0.0 });
                    }
                    // dv = Pᵀ·dy
                    mm(
                        (len, hd, len),
                        dv,
                        d3,
                        p.as_ptr(),
                        (len, 1),
                        dyh,
                        (1, d),
                        1.0,
                    );
                    // dP = dy·vᵀ
                    mm(
                        (len, len, hd),
                        dp.as_mut_ptr(),
                        len,
                        dyh,
                        (1, d),
                        v,
                        (d3, 1),
                        1.0,
                    );
                    // Softmax backward: dS = P ∘ (dP − rowsum(dy ∘ y)).
                    for (r, dot) in dots.iter_mut().enumerate() {
                        let yr = std::slice::from_raw_parts(yh.add(r * d), hd);
                        let gr = std::slice::from_raw_parts(dyh.add(r * d), hd);
                        *dot = yr.iter().zip(gr).map(|(a, b)| a * b).sum();
                    }
                    for ((dpr, pr), &dot) in dp.chunks_mut(len).zip(p.chunks(len)).zip(dots.iter())
                    {
                        for (g, &pv) in dpr.iter_mut().zip(pr) {
                            *g = pv * (*g - dot);
                        }
                    }
                    // dq = scale·dS·k, dk = scale·dSᵀ·q
                    mm(
                        (len, hd, len),
                        dq,
                        d3,
                        dp.as_ptr(),
                        (1, len),
                        k,
                        (1, d3),
                        scale,
                    );
                    mm(
                        (len, hd, len),
                        dk,
                        d3,
                        dp.as_ptr(),
                        (len, 1),
                        q,
                        (1, d3),
                        scale,
                    );
                }
            },
        );
        // SAFETY: the tasks above wrote the q, k and v blocks of every (batch, head).
        unsafe { dqkv.set_len(b * len * d3) };
        dqkv
    }
}

/// Multi-head self-attention from `qkv` `[B, L, 3·D]` (packed q; k; v) to `[B, L, D]`, with an
/// optional additive `[L, L]` mask, as one graph node (see the module docs). For f32 CPU
/// tensors, and f32 or bf16 CUDA tensors under the `cuda` feature (see [`super::enabled`]).
pub fn attention(qkv: &Tensor, heads: usize, mask: Option<&Tensor>) -> Result<Tensor> {
    let inner = FusedAttention::new(heads, mask)?;
    qkv.contiguous()?.apply_op1(FusedAttentionTrain { inner })
}
