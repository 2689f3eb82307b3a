//! LayerNorm over the last dimension as one op that saves the per-row mean and reciprocal
//! standard deviation (two floats a row) instead of the normalised tensor.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{packed, par_zeros, par_zeros_reserving, unpack};
use crate::host::contiguous_f32_3;

/// Rows per rayon task.
const ROWS_PER_TASK: usize = 64;

struct FusedLayerNorm {
    eps: f32,
    /// (mean, rstd) per row, written by the forward pass for the backward pass.
    stats: Mutex<Option<Arc<Stats>>>,
}

/// The per-row mean and reciprocal standard deviation of a forward pass, where it ran.
enum Stats {
    Host(Vec<f32>, Vec<f32>),
    #[cfg(feature = "cuda")]
    Cuda(
        candle_core::cuda_backend::cudarc::driver::CudaSlice<f32>,
        candle_core::cuda_backend::cudarc::driver::CudaSlice<f32>,
    ),
}

/// The backward pass of [`FusedLayerNorm`] as an op over `(x, w, dy)`: one flat output
/// `[dx (x's elements); dw (n); db (n)]`, split by the caller.
struct FusedLayerNormBackward {
    stats: Arc<Stats>,
}

impl CustomOp3 for FusedLayerNormBackward {
    fn name(&self) -> &'static str {
        "tic-fused-layer-norm-backward"
    }

    fn cpu_fwd(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        sw: &CpuStorage,
        lw: &Layout,
        sg: &CpuStorage,
        lg: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let (x, w, g) = contiguous_f32_3(name, (sx, lx), (sw, lw), (sg, lg))?;
        // Irrefutable without the `cuda` feature.
        #[allow(irrefutable_let_patterns)]
        let Stats::Host(mean, rstd) = &*self.stats
        else {
            candle_core::bail!("{name}: forward pass on another device");
        };
        let n = w.len();
        if n == 0 || x.len() % n != 0 || g.len() != x.len() || mean.len() * n != x.len() {
            candle_core::bail!("{name}: input {}, width {n}, gradient {}", x.len(), g.len());
        }
        let mut out = par_zeros_reserving(x.len(), 2 * n);
        let (dw, db) = layer_norm_backward_into(x, w, g, mean, rstd, n, &mut out);
        Ok(packed(out, [dw, db]))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        sx: &candle_core::CudaStorage,
        lx: &Layout,
        sw: &candle_core::CudaStorage,
        lw: &Layout,
        sg: &candle_core::CudaStorage,
        lg: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let Stats::Cuda(mean, rstd) = &*self.stats else {
            candle_core::bail!("{}: forward pass on another device", self.name());
        };
        let out = super::cuda::layer_norm_backward((sx, lx), (sw, lw), (sg, lg), mean, rstd)?;
        let len = lx.shape().elem_count() + 2 * lw.shape().elem_count();
        Ok((out, Shape::from(len)))
    }
}

impl CustomOp3 for FusedLayerNorm {
    fn name(&self) -> &'static str {
        "tic-fused-layer-norm"
    }

    fn cpu_fwd(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        sw: &CpuStorage,
        lw: &Layout,
        sb: &CpuStorage,
        lb: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let (x, w, b) = contiguous_f32_3(name, (sx, lx), (sw, lw), (sb, lb))?;
        let n = lx.shape().dims().last().copied().unwrap_or(1);
        if w.len() != n || b.len() != n || n == 0 {
            candle_core::bail!("{name}: width {n}, weight {}, bias {}", w.len(), b.len());
        }
        let (y, mean, rstd) = layer_norm_forward(x, w, b, n, self.eps);
        *self.stats.lock().expect("layer norm stats") = Some(Arc::new(Stats::Host(mean, rstd)));
        Ok((CpuStorage::F32(y), lx.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        sx: &candle_core::CudaStorage,
        lx: &Layout,
        sw: &candle_core::CudaStorage,
        lw: &Layout,
        sb: &candle_core::CudaStorage,
        lb: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (y, mean, rstd) =
            super::cuda::layer_norm_forward((sx, lx), (sw, lw), (sb, lb), self.eps)?;
        *self.stats.lock().expect("layer norm stats") = Some(Arc::new(Stats::Cuda(mean, rstd)));
        Ok((y, lx.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let name = self.name();
        let Some(stats) = self.stats.lock().expect("layer norm stats").clone() else {
            candle_core::bail!("{name}: backward before forward");
        };
        let grads = x.contiguous()?.apply_op3_no_bwd(
            &w.contiguous()?,
            &grad.contiguous()?,
            &FusedLayerNormBackward { stats },
        )?;
        let [dx, dw, db] = unpack(&grads, [x.shape(), w.shape(), w.shape()])?;
        Ok((dx, dw, db))
    }
}

/// `(y, mean, rstd)` of LayerNorm over the `n`-wide rows of `x` (statistics in f64, as the
/// rows are summed; y = (x − mean)·rstd·w + b).
pub(super) fn layer_norm_forward(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    n: usize,
    eps: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let rows = x.len() / n;
    let mut y = par_zeros(x.len());
    let mut mean = vec![0f32; rows];
    let mut rstd = vec![0f32; rows];
    y.par_chunks_mut(ROWS_PER_TASK * n)
        .zip(x.par_chunks(ROWS_PER_TASK * n))
        .zip(mean.par_chunks_mut(ROWS_PER_TASK))
        .zip(rstd.par_chunks_mut(ROWS_PER_TASK))
        .for_each(|(((y, x), mean), rstd)| {
            for (((y, x), mu), rs) in y
                .chunks_exact_mut(n)
                .zip(x.chunks_exact(n))
                .zip(mean.iter_mut())
                .zip(rstd.iter_mut())
            {
                let m = x.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
                let var = x.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / n as f64;
                let (m, r) = (m as f32, (1.0 / (var + eps as f64).sqrt()) as f32);
                for (((y, &xv), &wv), &bv) in y.iter_mut().zip(x).zip(w).zip(b) {
                    *y = (xv - m) * r * wv + bv;
                }
                *mu = m;
                *rs = r;
            }
        });
    (y, mean, rstd)
}

/// `(dx, dw, db)` of `y = (x − mean)·rstd·w + b` for the upstream gradient `g`, rows of `n`.
pub(super) fn layer_norm_backward(
    x: &[f32],
    w: &[f32],
    g: &[f32],
    mean: &[f32],
    rstd: &[f32],
    n: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut dx = par_zeros(x.len());
    let (dw, db) = layer_norm_backward_into(x, w, g, mean, rstd, n, &mut dx);
    (dx, dw, db)
}

/// As [`layer_norm_backward`], writing `dx` into `dx` (as long as `x`) and returning
/// `(dw, db)`.
fn layer_norm_backward_into(
    x: &[f32],
    w: &[f32],
    g: &[f32],
    mean: &[f32],
    rstd: &[f32],
    n: usize,
    dx: &mut [f32],
) -> (Vec<f32>, Vec<f32>) {
    let (dw, db) = dx
        .par_chunks_mut(ROWS_PER_TASK * n)
        .zip(x.par_chunks(ROWS_PER_TASK * n))
        .zip(g.par_chunks(ROWS_PER_TASK * n))
        .zip(
            mean.par_chunks(ROWS_PER_TASK)
                .zip(rstd.par_chunks(ROWS_PER_TASK)),
        )
        .map(|(((dx, x), g), (mean, rstd))| {
            // Per-task partial sums of dw and db, in f64, added up below in task order.
            let (mut dw, mut db) = (vec![0f64; n], vec![0f64; n]);
            for ((((dx, x), g), &m), &r) in dx
                .chunks_exact_mut(n)
                .zip(x.chunks_exact(n))
                .zip(g.chunks_exact(n))
                .zip(mean)
                .zip(rstd)
            {
                let (mut sum_gw, mut sum_gw_xhat) = (0f64, 0f64);
                for j in 0..n {
                    let xhat = (x[j] - m) * r;
                    let gw = g[j] * w[j];
                    sum_gw += gw as f64;
                    sum_gw_xhat += (gw * xhat) as f64;
                    dw[j] += (g[j] * xhat) as f64;
                    db[j] += g[j] as f64;
                }
                let (c1, c2) = ((sum_gw_xhat / n as f64) as f32, (sum_gw / n as f64) as f32);
                for j in 0..n {
                    let xhat = (x[j] - m) * r;
                    dx[j] = r * (g[j] * w[j] - c2 - xhat * c1);
                }
            }
            (dw, db)
        })
        .collect::<Vec<_>>()
        .into_iter()
        // Added in task order, not rayon's reduction order: the same bits on every run.
        .fold((vec![0f64; n], vec![0f64; n]), |(mut a, mut b), (c, d)| {
            a.iter_mut().zip(c).for_each(|(a, c)| *a += c);
            b.iter_mut().zip(d).for_each(|(b, d)| *b += d);
            (a, b)
        });
    let to_f32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect();
    (to_f32(dw), to_f32(db))
}

/// LayerNorm of `x` over its last dimension with `weight` and `bias` (`[D]`), as one graph node
/// that keeps only `x`, the output and two floats per row. For f32 CPU tensors, and f32 or bf16
/// CUDA tensors under the `cuda` feature (see [`super::enabled`]).
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    let op = FusedLayerNorm {
        eps: eps as f32,
        stats: Mutex::new(None),
    };
    x.contiguous()?
        .apply_op3(&weight.contiguous()?, &bias.contiguous()?, op)
}
