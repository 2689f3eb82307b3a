//! AdamW with OpenCLIP's two parameter groups, gradient clipping, and the logit-scale clamp.
//!
//! OpenCLIP (`training/main.py`) puts parameters with `ndim < 2` or a name containing `bn`,
//! `ln`, `bias` or `logit_scale` in a group without weight decay, everything else in a group
//! with `--wd` (0.2). The update is PyTorch's single-tensor `AdamW` (no amsgrad), step by step:
//! `p ← p·(1 − lr·wd)`, `m ← lerp(m, g, 1−β1)`, `v ← β2·v + (1−β2)·g²`,
//! `p ← p − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε)`, with a step count per parameter.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use candle_core::{backprop::GradStore, CpuStorage, DType, InplaceOp1, Layout, Tensor, Var};
use rayon::prelude::*;

/// OpenCLIP's `exclude` rule: true when the parameter gets no weight decay.
pub fn exclude_from_decay(name: &str, ndim: usize) -> bool {
    ndim < 2
        || name.contains("bn")
        || name.contains("ln")
        || name.contains("bias")
        || name.contains("logit_scale")
}

/// AdamW hyper-parameters (OpenCLIP ViT defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    /// β1.
    pub beta1: f64,
    /// β2.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    /// Weight decay of the decayed group.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.98,
            eps: 1e-6,
            weight_decay: 0.2,
        }
    }
}

/// One parameter and its optimizer state.
#[derive(Debug)]
pub struct ParamState {
    /// OpenCLIP name.
    pub name: String,
    /// The trainable variable.
    pub var: Var,
    /// In the decayed group.
    pub decay: bool,
    /// First moment (`exp_avg`), created on the first step.
    pub exp_avg: Option<Tensor>,
    /// Second moment (`exp_avg_sq`).
    pub exp_avg_sq: Option<Tensor>,
    /// Steps taken by this parameter.
    pub step: u64,
}

/// AdamW over named variables with OpenCLIP's groups.
#[derive(Debug)]
pub struct AdamW {
    /// Parameters in OpenCLIP order.
    pub params: Vec<ParamState>,
    /// Hyper-parameters.
    pub config: AdamWConfig,
    /// Update CPU f32 parameters with one fused host loop (default) instead of tensor ops.
    pub host_loop: bool,
}

impl AdamW {
    /// Groups `params` by [`exclude_from_decay`].
    pub fn new(params: Vec<(String, Var)>, config: AdamWConfig) -> Self {
        let params = params
            .into_iter()
            .map(|(name, var)| ParamState {
                decay: !exclude_from_decay(&name, var.rank()),
                name,
                var,
                exp_avg: None,
                exp_avg_sq: None,
                step: 0,
            })
            .collect();
        Self {
            params,
            config,
            host_loop: true,
        }
    }

    /// The gradient of every parameter from a `GradStore` (None where a parameter got none),
    /// detached: Candle's gradient of a variable still records the ops that computed it, and
    /// through them the forward pass's activations, which would otherwise stay alive until the
    /// gradients are dropped (after the optimizer step).
    pub fn grads(&self, store: &GradStore) -> Vec<Option<Tensor>> {
        self.params
            .iter()
            .map(|p| store.get(p.var.as_tensor()).map(Tensor::detach))
            .collect()
    }

    /// One optimizer step at learning rate `lr` (both groups, as `assign_learning_rate`).
    /// Parameters whose gradient is `None` are skipped (PyTorch skips `p.grad is None`).
    pub fn step(&mut self, grads: &[Option<Tensor>], lr: f64) -> Result<()> {
        if grads.len() != self.params.len() {
            bail!(
                "{} gradients for {} parameters",
                grads.len(),
                self.params.len()
            );
        }
        let c = self.config;
        for (p, g) in self.params.iter_mut().zip(grads) {
            let Some(g) = g else { continue };
            let g = g.to_dtype(DType::F32)?;
            p.step += 1;
            let wd = if p.decay { c.weight_decay } else { 0.0 };
            if self.host_loop && p.var.device().is_cpu() && p.var.dtype() == DType::F32 {
                step_host(p, &g, lr, wd, &c)?;
                continue;
            }
            let theta = p.var.as_tensor().to_dtype(DType::F32)?;
            let theta = if wd != 0.0 {
                theta.affine(1.0 - lr * wd, 0.0)?
            } else {
                theta
            };
            let m = match &p.exp_avg {
                Some(m) => (m + ((&g - m)? * (1.0 - c.beta1))?)?,
                None => (&g * (1.0 - c.beta1))?,
            };
            let g2 = (g.sqr()? * (1.0 - c.beta2))?;
            let v = match &p.exp_avg_sq {
                Some(v) => ((v * c.beta2)? + g2)?,
                None => g2,
            };
            let bc1 = 1.0 - c.beta1.powi(p.step as i32);
            let bc2 = 1.0 - c.beta2.powi(p.step as i32);
            let step_size = lr / bc1;
            let denom = ((v.sqrt()? / bc2.sqrt())? + c.eps)?;
            let upd = ((&m / denom)? * (-step_size))?;
            let new = (theta + upd)?.to_dtype(p.var.dtype())?;
            p.var.set(&new)?;
            p.exp_avg = Some(m);
            p.exp_avg_sq = Some(v);
        }
        Ok(())
    }

    /// Optimizer state as named tensors (`exp_avg/NAME`, `exp_avg_sq/NAME`, `step/NAME`).
    pub fn state_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for p in &self.params {
            if let (Some(m), Some(v)) = (&p.exp_avg, &p.exp_avg_sq) {
                out.insert(format!("exp_avg/{}", p.name), m.clone());
                out.insert(format!("exp_avg_sq/{}", p.name), v.clone());
                out.insert(
                    format!("step/{}", p.name),
                    Tensor::new(&[p.step as i64], &candle_core::Device::Cpu)?,
                );
            }
        }
        Ok(out)
    }

    /// Restores the state written by [`Self::state_tensors`]; `what` names the file in errors.
    pub fn load_state(&mut self, t: &HashMap<String, Tensor>, what: &str) -> Result<()> {
        for p in &mut self.params {
            let dev = p.var.device().clone();
            match (
                t.get(&format!("exp_avg/{}", p.name)),
                t.get(&format!("exp_avg_sq/{}", p.name)),
                t.get(&format!("step/{}", p.name)),
            ) {
                (Some(m), Some(v), Some(s)) => {
                    if m.dims() != p.var.dims() || v.dims() != p.var.dims() {
                        bail!(
                            "{what}: optimizer state of `{}` has shape {:?}, parameter {:?}",
                            p.name,
                            m.dims(),
                            p.var.dims()
                        );
                    }
                    p.exp_avg = Some(m.to_dtype(DType::F32)?.to_device(&dev)?);
                    p.exp_avg_sq = Some(v.to_dtype(DType::F32)?.to_device(&dev)?);
                    p.step = s
                        .to_vec1::<i64>()
                        .with_context(|| format!("{what}: step/{}", p.name))?[0]
                        as u64;
                }
                (None, None, None) => {
                    p.exp_avg = None;
                    p.exp_avg_sq = None;
                    p.step = 0;
                }
                _ => bail!("{what}: incomplete optimizer state for `{}`", p.name),
            }
        }
        Ok(())
    }
}

/// The same update as [`AdamW::step`] in place on the host buffers of a CPU f32 parameter
/// and its moments: one vectorised pass over parameter, moments and gradient together (read
/// four values, write three per element), split over the rayon pool, with no copy of any
/// tensor. Candle's CPU element-wise ops run one kernel per op into fresh buffers, which made
/// the optimizer a large part of a small model's step and, for a large model, held several
/// transient copies of the biggest parameter; three separate in-place passes still read the
/// moments twice. Per element, the f32 operations of PyTorch's single-tensor AdamW in its
/// order (`lerp_`, `mul_`/`addcmul_`, `addcdiv_`), so the result does not depend on the chunking
/// or the number of threads.
fn step_host(p: &mut ParamState, g: &Tensor, lr: f64, wd: f64, c: &AdamWConfig) -> Result<()> {
    let g = g.contiguous()?;
    let zeros = || p.var.as_tensor().zeros_like();
    let m = match p.exp_avg.take() {
        Some(m) => m.contiguous()?,
        None => zeros()?,
    };
    let v = match p.exp_avg_sq.take() {
        Some(v) => v.contiguous()?,
        None => zeros()?,
    };
    let bc1 = 1.0 - c.beta1.powi(p.step as i32);
    let update = HostUpdate {
        w1: (1.0 - c.beta1) as f32,
        b2: c.beta2 as f32,
        w2: (1.0 - c.beta2) as f32,
        decay: (wd != 0.0).then_some((1.0 - lr * wd) as f32),
        step_size: (lr / bc1) as f32,
        bc2_sqrt: ((1.0 - c.beta2.powi(p.step as i32)) as f32).sqrt(),
        eps: c.eps as f32,
    };
    let n = p.var.elem_count();
    if g.elem_count() != n || m.elem_count() != n || v.elem_count() != n {
        bail!(
            "AdamW `{}`: {} gradients for {n} values",
            p.name,
            g.elem_count()
        );
    }
    // The parameter, then each moment, is borrowed mutably through an in-place op (Candle's
    // only way to write a tensor's storage); the innermost closure sees all four buffers.
    with_host_mut(p.var.as_tensor(), |theta| {
        with_host_mut(&m, |m| {
            with_host_mut(&v, |v| {
                with_host_values(&g, |g| update.apply(theta, m, v, g))
                    .ok_or_else(|| candle_core::Error::Msg("AdamW: gradient not on host".into()))
            })
        })
    })?;
    p.exp_avg = Some(m);
    p.exp_avg_sq = Some(v);
    Ok(())
}

/// The constants of one parameter's AdamW update (see [`HostUpdate::apply`]).
struct HostUpdate {
    /// `1 − β1`.
    w1: f32,
    /// `β2`.
    b2: f32,
    /// `1 − β2`.
    w2: f32,
    /// `1 − lr·wd` for the decayed group.
    decay: Option<f32>,
    /// `lr / (1 − β1ᵗ)`.
    step_size: f32,
    /// `√(1 − β2ᵗ)`.
    bc2_sqrt: f32,
    /// `ε`.
    eps: f32,
}

impl HostUpdate {
    /// Per element, in this order: `m ← m + w1·(g − m)`, `v ← v·β2 + w2·g·g`,
    /// `θ ← θ·decay − step_size·m / (√v / √bc2 + ε)`.
    fn apply(&self, theta: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]) {
        let Self {
            w1,
            b2,
            w2,
            decay,
            step_size,
            bc2_sqrt,
            eps,
        } = *self;
        theta
            .par_chunks_mut(HOST_CHUNK)
            .zip(m.par_chunks_mut(HOST_CHUNK))
            .zip(v.par_chunks_mut(HOST_CHUNK))
            .zip(g.par_chunks(HOST_CHUNK))
            .for_each(|(((th, m), v), g)| {
                for (((t, m), v), &gi) in th.iter_mut().zip(m).zip(v).zip(g) {
                    *m += w1 * (gi - *m);
                    *v = *v * b2 + w2 * gi * gi;
                    let mut x = *t;
                    if let Some(d) = decay {
                        x *= d;
                    }
                    let denom = v.sqrt() / bc2_sqrt + eps;
                    *t = x - step_size * (*m / denom);
                }
            });
    }
}

/// Elements per rayon task of the host passes.
const HOST_CHUNK: usize = 1 << 16;

/// Runs `f` on the values of a contiguous CPU f32 tensor, mutably, through an in-place op
/// (which holds the storage's write lock while `f` runs).
fn with_host_mut(
    t: &Tensor,
    f: impl FnOnce(&mut [f32]) -> candle_core::Result<()>,
) -> candle_core::Result<()> {
    /// An in-place op that hands its storage to a closure once.
    struct Borrow<F>(std::cell::Cell<Option<F>>);
    impl<F: FnOnce(&mut [f32]) -> candle_core::Result<()>> InplaceOp1 for Borrow<F> {
        fn name(&self) -> &'static str {
            "tic-adamw-host"
        }
        fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> candle_core::Result<()> {
            let data = match (s, l.contiguous_offsets()) {
                (CpuStorage::F32(d), Some((a, b))) => &mut d[a..b],
                _ => candle_core::bail!("AdamW host update: expected a contiguous f32 tensor"),
            };
            match self.0.take() {
                Some(f) => f(data),
                None => candle_core::bail!("AdamW host update: storage borrowed twice"),
            }
        }
    }
    t.inplace_op1(&Borrow(std::cell::Cell::new(Some(f))))
}

/// `torch.nn.utils.clip_grad_norm_(params, max_norm)`: scales all gradients by
/// `min(1, max_norm / (total_norm + 1e-6))`; returns the total L2 norm before clipping.
pub fn clip_grad_norm(grads: &mut [Option<Tensor>], max_norm: f64) -> Result<f64> {
    let total = grad_norm(grads)?;
    let coef = (max_norm / (total + 1e-6)).min(1.0);
    if coef < 1.0 {
        let c = coef as f32;
        for g in grads.iter_mut().flatten() {
            // CPU f32: one parallel pass on the host (Candle's affine is single-threaded).
            let host = with_host_values(g, |v| {
                let scaled: Vec<f32> = v
                    .par_chunks(HOST_CHUNK)
                    .flat_map_iter(|ch| ch.iter().map(move |x| x * c))
                    .collect();
                scaled
            });
            *g = match host {
                Some(v) => Tensor::from_vec(v, g.shape(), g.device())?,
                None => g.affine(coef, 0.0)?,
            };
        }
    }
    Ok(total)
}

/// Runs `f` on the values of a contiguous CPU f32 tensor (borrowing its storage); None for
/// any other tensor.
fn with_host_values<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Option<R> {
    if !t.device().is_cpu() || t.dtype() != DType::F32 {
        return None;
    }
    let (storage, layout) = t.storage_and_layout();
    match (&*storage, layout.contiguous_offsets()) {
        (candle_core::Storage::Cpu(CpuStorage::F32(d)), Some((a, b))) => Some(f(&d[a..b])),
        _ => None,
    }
}

/// Total L2 norm of the gradients. CPU f32 gradients are summed on the host (squares in f64,
/// partial sums of fixed chunks added in order: no temporary tensors, the same value at any
/// number of threads); others with tensor ops and one host sync.
pub fn grad_norm(grads: &[Option<Tensor>]) -> Result<f64> {
    let mut host = 0f64;
    let mut sums = Vec::new();
    for g in grads.iter().flatten() {
        let on_host = with_host_values(g, |v| {
            let parts: Vec<f64> = v
                .par_chunks(HOST_CHUNK)
                .map(|c| c.iter().map(|&x| x as f64 * x as f64).sum::<f64>())
                .collect();
            parts.iter().sum::<f64>()
        });
        match on_host {
            Some(s) => host += s,
            None => sums.push(g.to_dtype(DType::F32)?.sqr()?.sum_all()?),
        }
    }
    if !sums.is_empty() {
        host += Tensor::stack(&sums, 0)?.sum_all()?.to_scalar::<f32>()? as f64;
    }
    Ok(host.sqrt())
}

/// Clamps `logit_scale` to `[0, ln 100]` (OpenCLIP, after every optimizer step).
pub fn clamp_logit_scale(var: &Var) -> Result<()> {
    let c = var.as_tensor().clamp(0.0f32, 100f32.ln())?;
    var.set(&c)?;
    Ok(())
}
