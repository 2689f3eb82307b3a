//! Multi-head self-attention from the packed `in_proj` output as one op: scores, scaling,
//! mask, softmax and the value product. The graph keeps only `qkv` (the op's input) and the
//! merged heads (its output); the backward pass recomputes each head's softmax from q and k,
//! as flash attention does, instead of keeping the `[B, H, L, L]` scores and the stages of a
//! composed softmax.

use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::cpu_kernels::{head_scores, FusedAttention};
use crate::gemm::{gemm, MatMut, MatRef, Parallelism, Scaling, Strides};
use crate::host::{contiguous_f32_3, OutPtr};
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
        let (qkv, y, dy) = contiguous_f32_3(name, (sq, lq), (sy, ly), (sg, lg))?;
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
        let shape = HeadShape {
            len,
            hd,
            d,
            scale: (hd as f32).powf(-0.5),
        };
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
                    let dbase = o.0.add(bi * len * d3 + hi * hd);
                    let head = HeadViews {
                        q: base,
                        k: base.add(d),
                        v: base.add(2 * d),
                        dq: dbase,
                        dk: dbase.add(d),
                        dv: dbase.add(2 * d),
                        y: y.as_ptr().add(bi * len * d + hi * hd),
                        dy: dy.as_ptr().add(bi * len * d + hi * hd),
                    };
                    shape.probabilities(&head, mask, p);
                    shape.gradients(&head, p, dp, dots);
                }
            },
        );
        // SAFETY: the tasks above wrote the q, k and v blocks of every (batch, head).
        unsafe { dqkv.set_len(b * len * d3) };
        dqkv
    }
}

/// One (batch, head) block of the backward pass: `L` rows of `hd` values each, rows `3·D`
/// apart in the packed `qkv` and its gradient, `D` apart in the merged heads `y` and `dy`.
struct HeadViews {
    q: *const f32,
    k: *const f32,
    v: *const f32,
    dq: *mut f32,
    dk: *mut f32,
    dv: *mut f32,
    y: *const f32,
    dy: *const f32,
}

/// The sizes of one head's backward pass: length, head size, width and the scores' scale.
struct HeadShape {
    len: usize,
    hd: usize,
    d: usize,
    scale: f32,
}

impl HeadShape {
    /// `P = softmax(scale·q·kᵀ + mask)` into `p` (`L × L`), as the forward pass computes it.
    ///
    /// # Safety
    /// `head`'s q and k must be valid for `L` rows of `hd` values, `3·D` apart.
    unsafe fn probabilities(&self, head: &HeadViews, mask: Option<&[f32]>, p: &mut [f32]) {
        let len = self.len;
        // SAFETY: per this function's contract; `p` holds L × L values.
        unsafe { head_scores(p, head.q, head.k, (len, self.hd, 3 * self.d), self.scale) };
        for (r, row) in p.chunks_mut(len).enumerate() {
            let m = mask.map(|m| &m[r * len..(r + 1) * len]);
            let sum = vmath::exp_shifted_row(row, m);
            vmath::scale(row, if sum > 0.0 { 1.0 / sum } else { 0.0 });
        }
    }

    /// Writes `dv = Pᵀ·dy`, then `dq = scale·dS·k` and `dk = scale·dSᵀ·q` for the softmax's
    /// backward `dS = P ∘ (dy·vᵀ − rowsum(dy ∘ y))`, built in `dp` (`L × L`; `dots`: `L`).
    ///
    /// # Safety
    /// Every view of `head` must be valid for `L` rows of `hd` values at its stride, the
    /// gradients' blocks written by no one else; `p` and `dp` hold `L × L` values.
    unsafe fn gradients(&self, head: &HeadViews, p: &[f32], dp: &mut [f32], dots: &mut [f32]) {
        let (len, hd, d, d3) = (self.len, self.hd, self.d, 3 * self.d);
        let none = Parallelism::None;
        // SAFETY: per this function's contract.
        unsafe {
            // dv = Pᵀ·dy
            gemm(
                (len, hd, len),
                MatMut::new(head.dv, Strides::row_major(d3)),
                MatRef::new(p.as_ptr(), Strides::transposed(len)),
                MatRef::new(head.dy, Strides::row_major(d)),
                Scaling::product(1.0),
                none,
            );
            // dP = dy·vᵀ
            gemm(
                (len, len, hd),
                MatMut::new(dp.as_mut_ptr(), Strides::row_major(len)),
                MatRef::new(head.dy, Strides::row_major(d)),
                MatRef::new(head.v, Strides::transposed(d3)),
                Scaling::product(1.0),
                none,
            );
        }
        // Softmax backward: dS = P ∘ (dP − rowsum(dy ∘ y)).
        for (r, dot) in dots.iter_mut().enumerate() {
            // SAFETY: row r of this head's block of y and dy.
            let (yr, gr) = unsafe {
                (
                    std::slice::from_raw_parts(head.y.add(r * d), hd),
                    std::slice::from_raw_parts(head.dy.add(r * d), hd),
                )
            };
            *dot = yr.iter().zip(gr).map(|(a, b)| a * b).sum();
        }
        for ((dpr, pr), &dot) in dp.chunks_mut(len).zip(p.chunks(len)).zip(dots.iter()) {
            for (g, &pv) in dpr.iter_mut().zip(pr) {
                *g = pv * (*g - dot);
            }
        }
        // dq = scale·dS·k, dk = scale·dSᵀ·q
        let scaled = Scaling::product(self.scale);
        // SAFETY: per this function's contract.
        unsafe {
            gemm(
                (len, hd, len),
                MatMut::new(head.dq, Strides::row_major(d3)),
                MatRef::new(dp.as_ptr(), Strides::row_major(len)),
                MatRef::new(head.k, Strides::row_major(d3)),
                scaled,
                none,
            );
            gemm(
                (len, hd, len),
                MatMut::new(head.dk, Strides::row_major(d3)),
                MatRef::new(dp.as_ptr(), Strides::transposed(len)),
                MatRef::new(head.q, Strides::row_major(d3)),
                scaled,
                none,
            );
        }
    }
}

/// Multi-head self-attention from `qkv` `[B, L, 3·D]` (packed q; k; v) to `[B, L, D]`, with an
/// optional additive `[L, L]` mask, as one graph node (see the module docs). For f32 CPU
/// tensors, and f32 or bf16 CUDA tensors under the `cuda` feature (see [`super::enabled`]).
pub fn attention(qkv: &Tensor, heads: usize, mask: Option<&Tensor>) -> Result<Tensor> {
    let inner = FusedAttention::new(heads, mask)?;
    qkv.contiguous()?.apply_op1(FusedAttentionTrain { inner })
}
