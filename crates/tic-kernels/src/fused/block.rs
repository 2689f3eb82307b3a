//! A whole residual block (`x += attn(ln_1(x)); x += mlp(ln_2(x))`, exact GELU) with its own
//! backward pass on host memory, for the segment-by-segment training step
//! (`tic_model::recompute`, whose `OwnBackward` segments tic-model builds on
//! [`BlockSegment`]): no autograd graph at all inside the block.
//!
//! The fused ops already keep only what their backward passes need, but each is still a node
//! of Candle's graph, and Candle's backward pass gives every node's every operand a fresh
//! zero-filled gradient and adds into it (`zeros_like` + add, for activations and weights
//! alike), and runs the block's reshapes and residual additions as nodes of their own. Here
//! the block's forward pass keeps the same activations as the fused ops (the normalised
//! inputs of the projections, `qkv`, the merged heads, the residual stream between the two
//! halves, the MLP's pre-activation and hidden state, LayerNorm's mean and rstd) and the
//! backward pass writes each gradient once, with the same kernels
//! ([`super::layer_norm`], [`super::attention`], [`super::linear`]).

use candle_core::backprop::GradStore;
use candle_core::{Result, Storage, Tensor};
use rayon::prelude::*;

use super::layer_norm::{layer_norm_backward, layer_norm_forward};
use super::linear::{gelu_backward, gelu_forward, linear_backward};
use super::{with_host, CHUNK};
use crate::cpu_kernels::{linear_rows, FusedAttention};
use crate::host::contiguous_f32;

/// LayerNorm's epsilon (`torch.nn.LayerNorm`).
const EPS: f32 = 1e-5;

/// A residual block's parameters, in OpenCLIP's order: `ln_1.{weight,bias}`,
/// `attn.in_proj_{weight,bias}`, `attn.out_proj.{weight,bias}`, `ln_2.{weight,bias}`,
/// `mlp.c_fc.{weight,bias}`, `mlp.c_proj.{weight,bias}`.
pub type BlockTensors = [Tensor; 12];

/// One residual block as a segment with its own backward pass: its parameters, heads and the
/// attention mask (the text tower's causal mask).
pub struct BlockSegment {
    params: BlockTensors,
    attention: FusedAttention,
}

impl BlockSegment {
    /// The segment for a block with these parameters, `heads` heads and an optional additive
    /// `[L, L]` mask.
    pub fn new(params: BlockTensors, heads: usize, mask: Option<&Tensor>) -> Result<Self> {
        Ok(Self {
            params,
            attention: FusedAttention::new(heads, mask)?,
        })
    }
}

/// What the block's backward pass needs from its forward pass (the block input is kept by
/// the caller): [`BlockSegment::forward_taped`] makes it, [`BlockSegment::backward_taped`]
/// consumes it.
pub struct BlockTape {
    dims: (usize, usize, usize),
    h1: Vec<f32>,
    stats1: (Vec<f32>, Vec<f32>),
    qkv: Vec<f32>,
    att: Vec<f32>,
    x1: Vec<f32>,
    h2: Vec<f32>,
    stats2: (Vec<f32>, Vec<f32>),
    pre: Vec<f32>,
    hid: Vec<f32>,
}

/// Runs `f` on host views of the parameters (borrowing their storage).
fn with_params<R>(ts: &BlockTensors, f: impl FnOnce(&[&[f32]]) -> Result<R>) -> Result<R> {
    let guards: Vec<_> = ts.iter().map(|t| t.storage_and_layout()).collect();
    let views = guards
        .iter()
        .map(|(s, l)| match &**s {
            Storage::Cpu(c) => contiguous_f32(c, l, "tic-fused-block"),
            _ => candle_core::bail!("tic-fused-block: expected CPU parameters"),
        })
        .collect::<Result<Vec<_>>>()?;
    f(&views)
}

/// `a += b`, element by element, in parallel chunks.
fn add_into(a: &mut [f32], b: &[f32]) {
    a.par_chunks_mut(CHUNK)
        .zip(b.par_chunks(CHUNK))
        .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(a, b)| *a += b));
}

impl BlockSegment {
    /// The block's output and tape for the input `x` `[B, L, D]` (host values).
    fn forward_host(
        &self,
        x: &[f32],
        (b, l, d): (usize, usize, usize),
    ) -> Result<(Vec<f32>, BlockTape)> {
        with_params(&self.params, |p| {
            let [ln1w, ln1b, inw, inb, outw, outb, ln2w, ln2b, fcw, fcb, projw, projb] = p else {
                candle_core::bail!("tic-fused-block: expected 12 parameters");
            };
            let (rows, m) = (b * l, fcb.len());
            if ln1w.len() != d || inb.len() != 3 * d || projb.len() != d {
                candle_core::bail!("tic-fused-block: parameters do not fit width {d}");
            }
            let (h1, mean1, rstd1) = layer_norm_forward(x, ln1w, ln1b, d, EPS);
            let qkv = linear_rows(&h1, inw, rows, 3 * d, d, Some(inb), false);
            let att = self.attention.forward_host(&qkv, (b, l, 3 * d))?;
            let mut x1 = linear_rows(&att, outw, rows, d, d, Some(outb), false);
            add_into(&mut x1, x);
            let (h2, mean2, rstd2) = layer_norm_forward(&x1, ln2w, ln2b, d, EPS);
            let pre = linear_rows(&h2, fcw, rows, m, d, Some(fcb), false);
            let hid = gelu_forward(&pre, m);
            let mut out = linear_rows(&hid, projw, rows, d, m, Some(projb), false);
            add_into(&mut out, &x1);
            let tape = BlockTape {
                dims: (b, l, d),
                h1,
                stats1: (mean1, rstd1),
                qkv,
                att,
                x1,
                h2,
                stats2: (mean2, rstd2),
                pre,
                hid,
            };
            Ok((out, tape))
        })
    }

    /// The gradient of the block input `x` and the parameters' gradients (in
    /// [`BlockTensors`] order) for the output gradient `dy`.
    fn backward_host(
        &self,
        x: &[f32],
        t: BlockTape,
        dy: &[f32],
    ) -> Result<(Vec<f32>, Vec<Vec<f32>>)> {
        let (b, l, d) = t.dims;
        with_params(&self.params, |p| {
            let [ln1w, _, inw, _, outw, _, ln2w, _, fcw, _, projw, _] = p else {
                candle_core::bail!("tic-fused-block: expected 12 parameters");
            };
            let (rows, m) = (b * l, t.pre.len() / (b * l));
            // out = x1 + c_proj(gelu(c_fc(ln_2(x1))))
            let (mut dpre, dprojw, dprojb) = linear_backward(&t.hid, projw, dy, (rows, d, m));
            drop(t.hid);
            gelu_backward(&t.pre, &mut dpre);
            drop(t.pre);
            let (dh2, dfcw, dfcb) = linear_backward(&t.h2, fcw, &dpre, (rows, m, d));
            drop((dpre, t.h2));
            let (mut dx1, dln2w, dln2b) =
                layer_norm_backward(&t.x1, ln2w, &dh2, &t.stats2.0, &t.stats2.1, d);
            drop((dh2, t.x1));
            add_into(&mut dx1, dy);
            // x1 = x + out_proj(attention(in_proj(ln_1(x))))
            let (datt, doutw, doutb) = linear_backward(&t.att, outw, &dx1, (rows, d, d));
            let dqkv = self
                .attention
                .backward_host(&t.qkv, &t.att, &datt, (b, l, 3 * d));
            drop((datt, t.att, t.qkv));
            let (dh1, dinw, dinb) = linear_backward(&t.h1, inw, &dqkv, (rows, 3 * d, d));
            drop((dqkv, t.h1));
            let (mut dx, dln1w, dln1b) =
                layer_norm_backward(x, ln1w, &dh1, &t.stats1.0, &t.stats1.1, d);
            add_into(&mut dx, &dx1);
            Ok((
                dx,
                vec![
                    dln1w, dln1b, dinw, dinb, doutw, doutb, dln2w, dln2b, dfcw, dfcb, dprojw,
                    dprojb,
                ],
            ))
        })
    }
}

impl BlockSegment {
    /// The block's output for `x` `[B, L, D]` (CPU f32; no graph) and what its backward pass
    /// needs.
    pub fn forward_taped(&self, x: &Tensor) -> Result<(Tensor, BlockTape)> {
        let dims = x.dims3()?;
        let (out, tape) = with_host(x, "tic-fused-block", |xs| self.forward_host(xs, dims))?;
        Ok((Tensor::from_vec(out, dims, x.device())?, tape))
    }

    /// The gradient of the input `x` and a store with the parameters' gradients, given the
    /// tape [`Self::forward_taped`] made for `x` and the gradient of the output.
    pub fn backward_taped(
        &self,
        x: &Tensor,
        tape: BlockTape,
        grad: &Tensor,
    ) -> Result<(Tensor, GradStore)> {
        let name = "tic-fused-block";
        let (dx, grads) = with_host(x, name, |xs| {
            with_host(grad, name, |dy| self.backward_host(xs, tape, dy))
        })?;
        let mut store = GradStore::default();
        for (p, g) in self.params.iter().zip(grads) {
            store.insert(p, Tensor::from_vec(g, p.shape(), p.device())?);
        }
        Ok((Tensor::from_vec(dx, x.shape(), x.device())?, store))
    }
}
