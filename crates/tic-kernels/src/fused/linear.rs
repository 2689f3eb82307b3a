//! The biased linear layer `x·Wᵀ + b`, optionally followed by exact GELU (the MLP's first
//! layer), as one op: the product before the bias is never a graph node of its own, and with
//! GELU the pre-activation is kept by the op for its backward pass (as PyTorch's GELU keeps
//! its input) instead of as two graph nodes.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{matmul, packed, par_copy_then, par_copy_then_reserving, unpack, with_host, CHUNK};
use crate::gemm::Strides;
use crate::host::{contiguous_f32, contiguous_f32_3};
use crate::vmath;

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
        let (x, w, b) = contiguous_f32_3(name, (sx, lx), (sw, lw), (sb, lb))?;
        if k != kw || b.len() != n {
            candle_core::bail!(
                "{name}: input width {k}, weight [{n}, {kw}], bias {}",
                b.len()
            );
        }
        let pre = crate::cpu_kernels::linear_rows(x, w, rows, n, k, Some(b), false);
        let out = if self.gelu {
            let out = gelu_forward(&pre, n);
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
        let name = self.name();
        let (rows, k) = x.dims2()?;
        let n = w.dim(0)?;
        let backward = |dz: &[f32]| {
            with_host(x, name, |x| {
                with_host(w, name, |w| Ok(linear_backward(x, w, dz, (rows, n, k))))
            })
        };
        let (dx, dw, db) = if self.gelu {
            let guard = self.pre.lock().expect("linear pre-activation");
            let Some(pre) = guard.as_ref() else {
                candle_core::bail!("{name}: backward before forward");
            };
            let dz = with_host(grad, name, |g| {
                Ok(par_copy_then(g, CHUNK, |at, dz| {
                    vmath::gelu_backward(&pre[at..at + dz.len()], dz)
                }))
            })?;
            backward(&dz)?
        } else {
            with_host(grad, name, backward)?
        };
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, (rows, k), dev)?),
            Some(Tensor::from_vec(dw, (n, k), dev)?),
            Some(Tensor::from_vec(db, n, dev)?),
        ))
    }
}

/// `gelu(pre)` of the MLP's `n`-wide pre-activation rows, into a new buffer (the pre-activation
/// stays for the backward pass), in parallel chunks of whole rows.
pub(super) fn gelu_forward(pre: &[f32], n: usize) -> Vec<f32> {
    par_copy_then(pre, CHUNK.div_ceil(n) * n, |_, c| {
        vmath::bias_gelu_rows(c, n, None, true)
    })
}

/// `g ·= gelu'(pre)` in parallel chunks: the gradient of the MLP's pre-activation.
pub(super) fn gelu_backward(pre: &[f32], g: &mut [f32]) {
    g.par_chunks_mut(CHUNK)
        .zip(pre.par_chunks(CHUNK))
        .for_each(|(g, p)| vmath::gelu_backward(p, g));
}

/// `(dx, dW, db)` of `z = x·Wᵀ + b` for `x` `[rows, k]`, `W` `[n, k]` and the gradient `dz`
/// `[rows, n]` (`dims` = (rows, n, k)), as row-major host values.
pub(super) fn linear_backward(
    x: &[f32],
    w: &[f32],
    dz: &[f32],
    (rows, n, k): (usize, usize, usize),
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert!(x.len() == rows * k && w.len() == n * k && dz.len() == rows * n);
    // SAFETY: the extents below are those of the checked lengths: dz·W is [rows×n]·[n×k];
    // dzᵀ·x is [n×rows]·[rows×k] with dzᵀ a column-major view of dz.
    let (dx, dw) = unsafe {
        (
            matmul(
                (rows, k, n),
                dz.as_ptr(),
                Strides::row_major(n),
                w.as_ptr(),
                Strides::row_major(k),
            ),
            matmul(
                (n, k, rows),
                dz.as_ptr(),
                Strides::transposed(n),
                x.as_ptr(),
                Strides::row_major(k),
            ),
        )
    };
    (dx, dw, column_sums(dz, n))
}

/// Rows per partial sum of [`column_sums`].
const ROWS_PER_SUM: usize = 64;

/// The sums over rows of an `n`-wide row-major matrix (the bias gradient `Σ_rows dz`):
/// partial sums of [`ROWS_PER_SUM`] rows in parallel, added up in row order, so the result
/// does not depend on the number of threads. Candle's `sum(0)` reduces over the strided
/// dimension one element at a time on one thread (~20 ms for a `[1600, 3072]` gradient).
pub(crate) fn column_sums(m: &[f32], n: usize) -> Vec<f32> {
    m.par_chunks(ROWS_PER_SUM * n)
        .map(|rows| {
            let mut acc = vec![0f32; n];
            vmath::add_rows(&mut acc, rows);
            acc
        })
        .collect::<Vec<_>>()
        .into_iter()
        .fold(vec![0f32; n], |mut a, p| {
            vmath::add_rows(&mut a, &p);
            a
        })
}

/// `act(z + b)` over the `n`-wide rows of `z` (`act`: exact GELU with `gelu`, else the
/// identity) as one op over `(z, b)`: the bias and GELU of [`linear`] on devices where the
/// product `z = x·Wᵀ` comes from Candle's matmul (cuBLAS on a GPU). The graph keeps `z` and the
/// output; the backward pass recomputes `z + b`.
struct BiasGelu {
    gelu: bool,
}

impl CustomOp2 for BiasGelu {
    fn name(&self) -> &'static str {
        "tic-fused-bias-gelu"
    }

    fn cpu_fwd(
        &self,
        sz: &CpuStorage,
        lz: &Layout,
        sb: &CpuStorage,
        lb: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let (z, b) = (contiguous_f32(sz, lz, name)?, contiguous_f32(sb, lb, name)?);
        let n = b.len();
        if n == 0 || lz.dims().last() != Some(&n) {
            candle_core::bail!("{name}: input {:?}, bias {n}", lz.shape());
        }
        let out = par_copy_then(z, CHUNK.div_ceil(n) * n, |_, c| {
            vmath::bias_gelu_rows(c, n, Some(b), self.gelu)
        });
        Ok((CpuStorage::F32(out), lz.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        sz: &candle_core::CudaStorage,
        lz: &Layout,
        sb: &candle_core::CudaStorage,
        lb: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let out = super::cuda::bias_gelu_forward((sz, lz), (sb, lb), self.gelu)?;
        Ok((out, lz.shape().clone()))
    }

    fn bwd(
        &self,
        z: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grads = z.contiguous()?.apply_op3_no_bwd(
            &b.contiguous()?,
            &grad.contiguous()?,
            &BiasGeluBackward { gelu: self.gelu },
        )?;
        let [dz, db] = unpack(&grads, [z.shape(), b.shape()])?;
        Ok((dz, db))
    }
}

/// The backward pass of [`BiasGelu`] as an op over `(z, b, dy)`: one flat output
/// `[dz (z's elements); db (n)]`, split by the caller.
struct BiasGeluBackward {
    gelu: bool,
}

impl CustomOp3 for BiasGeluBackward {
    fn name(&self) -> &'static str {
        "tic-fused-bias-gelu-backward"
    }

    fn cpu_fwd(
        &self,
        sz: &CpuStorage,
        lz: &Layout,
        sb: &CpuStorage,
        lb: &Layout,
        sg: &CpuStorage,
        lg: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let (z, b, g) = contiguous_f32_3(name, (sz, lz), (sb, lb), (sg, lg))?;
        let n = b.len();
        if n == 0 || z.len() % n != 0 || g.len() != z.len() {
            candle_core::bail!("{name}: input {}, bias {n}, gradient {}", z.len(), g.len());
        }
        // dz = g · gelu'(z + b), the pre-activation recomputed chunk by chunk (whole rows).
        let dz = par_copy_then_reserving(g, n, CHUNK.div_ceil(n) * n, |at, dz| {
            if self.gelu {
                let mut pre = z[at..at + dz.len()].to_vec();
                vmath::bias_gelu_rows(&mut pre, n, Some(b), false);
                vmath::gelu_backward(&pre, dz);
            }
        });
        let db = column_sums(&dz, n);
        Ok(packed(dz, [db]))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        sz: &candle_core::CudaStorage,
        lz: &Layout,
        sb: &candle_core::CudaStorage,
        lb: &Layout,
        sg: &candle_core::CudaStorage,
        lg: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let out = super::cuda::bias_gelu_backward((sz, lz), (sb, lb), (sg, lg), self.gelu)?;
        let len = lz.shape().elem_count() + lb.shape().elem_count();
        Ok((out, Shape::from(len)))
    }
}

/// `x·Wᵀ + b` for `x` `[rows, in]`, `weight` `[out, in]`, `bias` `[out]`, then exact GELU with
/// `gelu`, as one graph node (see the module docs). For contiguous f32 CPU tensors (see
/// [`super::enabled`]). On a CUDA device (f32 or bf16, `cuda` feature) the product is
/// Candle's matmul (cuBLAS, with Candle's backward) and the bias and GELU one op with its own
/// kernels and backward pass (which keeps the product instead of the pre-activation).
pub fn linear(x: &Tensor, weight: &Tensor, bias: &Tensor, gelu: bool) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return x
            .matmul(&weight.t()?)?
            .apply_op2(&bias.contiguous()?, BiasGelu { gelu });
    }
    let op = FusedLinearTrain {
        gelu,
        pre: Mutex::new(None),
    };
    x.contiguous()?
        .apply_op3(&weight.contiguous()?, &bias.contiguous()?, op)
}

/// The bias and GELU op of [`linear`]'s GPU path, applied on any device (tests).
#[cfg(test)]
fn bias_gelu(z: &Tensor, bias: &Tensor, gelu: bool) -> Result<Tensor> {
    z.contiguous()?
        .apply_op2(&bias.contiguous()?, BiasGelu { gelu })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Shape};
    use rand::{Rng, SeedableRng};

    /// Normal draws (mean 0, `std`) from `rng`: inputs that are the same on every run, so the
    /// tolerances below are checked on fixed data, not on whatever the thread RNG gives.
    fn normal(
        rng: &mut rand_chacha::ChaCha8Rng,
        std: f32,
        shape: impl Into<Shape>,
    ) -> Result<Tensor> {
        let shape = shape.into();
        let dist = rand_distr::Normal::new(0f32, std).expect("a finite std");
        let v: Vec<f32> = (0..shape.elem_count()).map(|_| rng.sample(dist)).collect();
        Tensor::from_vec(v, shape, &Device::Cpu)
    }

    #[test]
    fn bias_gelu_op_matches_the_composed_ops() -> Result<()> {
        // 70 rows (two partial sums of the bias gradient); 13 columns (one chunk of rows) and
        // 1000 columns (three chunks of 33 rows, the last one partial).
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        for (gelu, n) in [(false, 13), (true, 13), (false, 1000), (true, 1000)] {
            let z = candle_core::Var::from_tensor(&normal(&mut rng, 1.5, (70, n))?)?;
            let b = candle_core::Var::from_tensor(&normal(&mut rng, 0.5, n)?)?;
            let g = normal(&mut rng, 1.0, (70, n))?;
            let fused = bias_gelu(z.as_tensor(), b.as_tensor(), gelu)?;
            let mut composed = z.as_tensor().broadcast_add(b.as_tensor())?;
            if gelu {
                composed = composed.gelu_erf()?;
            }
            let close = |a: &Tensor, c: &Tensor| -> Result<()> {
                let d = (a - c)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
                assert!(d < 1e-5, "gelu {gelu}, width {n}: max difference {d}");
                Ok(())
            };
            close(&fused, &composed)?;
            let gf = (fused * &g)?.sum_all()?.backward()?;
            let gc = (composed * &g)?.sum_all()?.backward()?;
            for v in [&z, &b] {
                close(
                    gf.get(v.as_tensor()).expect("fused gradient"),
                    gc.get(v.as_tensor()).expect("composed gradient"),
                )?;
            }
        }
        Ok(())
    }

    #[test]
    fn column_sums_equal_candle_sum_over_rows() -> Result<()> {
        // 200 rows: three full partial sums and a remainder; 37 columns: not a SIMD width.
        let m = Tensor::randn(0f32, 1.0, (200, 37), &Device::Cpu)?;
        let want = m.sum(0)?.to_vec1::<f32>()?;
        let got = column_sums(&m.flatten_all()?.to_vec1::<f32>()?, 37);
        assert_eq!(got.len(), 37);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-4 * w.abs().max(1.0), "{g} vs {w}");
        }
        Ok(())
    }
}
