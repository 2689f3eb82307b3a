//! The biased linear layer `x·Wᵀ + b`, optionally followed by exact GELU (the MLP's first
//! layer), as one op: the product before the bias is never a graph node of its own, and with
//! GELU the pre-activation is kept by the op for its backward pass (as PyTorch's GELU keeps
//! its input) instead of as two graph nodes.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{slice, with_host};
use crate::vmath;

/// Elements per rayon task of the element-wise passes.
const CHUNK: usize = 1 << 15;

struct FusedLinearTrain {
    gelu: bool,
    /// `x·Wᵀ + b`, kept by the forward pass when GELU follows.
    pre: Mutex<Option<Vec<f32>>>,
}

impl CustomOp3 for FusedLinearTrain {
    fn name(&self) -> &'static str {
        "tic-fused-linear-train"
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
        let (rows, k) = lx.shape().dims2()?;
        let (n, kw) = lw.shape().dims2()?;
        let (x, w, b) = (
            slice(sx, lx, name)?,
            slice(sw, lw, name)?,
            slice(sb, lb, name)?,
        );
        if k != kw || b.len() != n {
            candle_core::bail!(
                "{name}: input width {k}, weight [{n}, {kw}], bias {}",
                b.len()
            );
        }
        let pre = crate::cpu_kernels::linear_rows(x, w, rows, n, k, Some(b), false);
        let out = if self.gelu {
            let mut out = pre.clone();
            out.par_chunks_mut(CHUNK.div_ceil(n) * n)
                .for_each(|c| vmath::bias_gelu_rows(c, n, None, true));
            *self.pre.lock().expect("linear pre-activation") = Some(pre);
            out
        } else {
            pre
        };
        Ok((CpuStorage::F32(out), Shape::from((rows, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dz = if self.gelu {
            let guard = self.pre.lock().expect("linear pre-activation");
            let Some(pre) = guard.as_ref() else {
                candle_core::bail!("{}: backward before forward", self.name());
            };
            let mut dz = with_host(grad, self.name(), |g| Ok(g.to_vec()))?;
            dz.par_chunks_mut(CHUNK)
                .zip(pre.par_chunks(CHUNK))
                .for_each(|(g, p)| vmath::gelu_backward(p, g));
            Tensor::from_vec(dz, grad.shape(), grad.device())?
        } else {
            grad.contiguous()?
        };
        let dx = dz.matmul(w)?;
        let dw = dz.t()?.matmul(x)?;
        let db = dz.sum(0)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// `x·Wᵀ + b` for `x` `[rows, in]`, `weight` `[out, in]`, `bias` `[out]`, then exact GELU with
/// `gelu`, as one graph node (see the module docs). For contiguous f32 CPU tensors (see
/// [`super::enabled`]).
pub fn linear(x: &Tensor, weight: &Tensor, bias: &Tensor, gelu: bool) -> Result<Tensor> {
    let op = FusedLinearTrain {
        gelu,
        pre: Mutex::new(None),
    };
    x.contiguous()?
        .apply_op3(&weight.contiguous()?, &bias.contiguous()?, op)
}
