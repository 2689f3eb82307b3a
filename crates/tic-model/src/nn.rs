//! Transformer building blocks with OpenCLIP's parameter layout.
//!
//! Every op here is differentiable whenever its input is part of an autograd graph
//! ([`Tensor::track_op`]): on CPU f32 training graphs LayerNorm, attention and the biased
//! linear layers (with the MLP's GELU) run as tic-kernels' [`fused`] ops with their own
//! backward; elsewhere (GPU, half precision, `TIC_FUSED_OPS=off`) as composed Candle ops
//! (Candle's own fused `layer_norm` / `softmax_last_dim` kernels record no backward op and
//! would silently cut the gradient). Plain inference tensors use the inference kernels of
//! [`cpu_kernels`].

use candle_core::backprop::GradStore;
use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::VarBuilder;
use tic_kernels::{cpu_kernels, fused};

use crate::recompute::{OwnBackward, Saved, Segment};

/// A dense layer `y = x Wᵀ + b` with PyTorch's `[out, in]` weight layout.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// Loads `weight` (`[out, in]`) and optionally `bias` (`[out]`) under `vb`.
    pub fn new(vb: VarBuilder, in_dim: usize, out_dim: usize, bias: bool) -> Result<Self> {
        let weight = vb.get((out_dim, in_dim), "weight")?;
        let bias = if bias {
            Some(vb.get(out_dim, "bias")?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    /// Builds from explicit tensors (`weight` `[out, in]`, `bias` `[out]`).
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    /// Whether the fused CPU inference kernel applies (input and weights f32 on CPU, nothing
    /// tracked for autograd).
    fn fused(&self, x: &Tensor) -> bool {
        cpu_kernels::applies(x)
            && cpu_kernels::applies(&self.weight)
            && self.bias.as_ref().is_none_or(cpu_kernels::applies)
    }

    /// `gelu(x Wᵀ + b)` (exact GELU), fused on CPU inference tensors.
    pub fn forward_gelu(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_rows(x, true)
    }

    /// `x Wᵀ + b` (then GELU with `gelu`) on `x` flattened to rows, so the product is one 2-D
    /// GEMM (no per-batch broadcast copies); the fused kernel on CPU inference tensors.
    fn forward_rows(&self, x: &Tensor, gelu: bool) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let in_dim = *dims.last().expect("rank >= 1");
        let rows: usize = dims[..dims.len() - 1].iter().product();
        let x2 = x.reshape((rows, in_dim))?;
        let y = if self.fused(x) {
            cpu_kernels::linear(&x2, &self.weight, self.bias.as_ref(), gelu)?
        } else if let Some(b) = self
            .bias
            .as_ref()
            .filter(|b| fused::enabled(&[&x2, &self.weight, b]))
        {
            fused::linear(&x2, &self.weight, b, gelu)?
        } else {
            let mut y = x2.matmul(&self.weight.t()?)?;
            if let Some(b) = &self.bias {
                y = y.broadcast_add(b)?;
            }
            if gelu {
                y = y.gelu_erf()?;
            }
            y
        };
        let mut out_dims = dims;
        *out_dims.last_mut().expect("rank >= 1") = self.weight.dim(0)?;
        y.reshape(out_dims)
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_rows(x, false)
    }
}

/// LayerNorm over the last dimension (eps 1e-5, as `torch.nn.LayerNorm`).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// Loads `weight` and `bias` (`[dim]`) under `vb`.
    pub fn new(vb: VarBuilder, dim: usize) -> Result<Self> {
        Ok(Self::from_tensors(
            vb.get(dim, "weight")?,
            vb.get(dim, "bias")?,
        ))
    }

    /// Builds from explicit `weight` and `bias` (`[dim]`), eps 1e-5.
    pub fn from_tensors(weight: Tensor, bias: Tensor) -> Self {
        Self {
            weight,
            bias,
            eps: 1e-5,
        }
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if fused::enabled(&[x, &self.weight, &self.bias]) {
            return fused::layer_norm(x, &self.weight, &self.bias, self.eps);
        }
        let tracked = x.track_op() || self.weight.track_op() || self.bias.track_op();
        if tracked || !x.is_contiguous() {
            layer_norm_differentiable(x, &self.weight, &self.bias, self.eps)
        } else {
            candle_nn::ops::layer_norm(x, &self.weight, &self.bias, self.eps as f32)
        }
    }
}

/// LayerNorm built from differentiable primitives; statistics in f32 for half-precision input.
pub fn layer_norm_differentiable(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let x = match dtype {
        DType::F16 | DType::BF16 => x.to_dtype(DType::F32)?,
        _ => x.clone(),
    };
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let xn = xc.broadcast_div(&(var + eps)?.sqrt()?)?;
    xn.to_dtype(dtype)?.broadcast_mul(w)?.broadcast_add(b)
}

/// Softmax over the last dimension; differentiable when the input is tracked.
pub fn softmax_last(x: &Tensor) -> Result<Tensor> {
    if x.track_op() || !x.is_contiguous() {
        candle_nn::ops::softmax(x, D::Minus1)
    } else {
        candle_nn::ops::softmax_last_dim(x)
    }
}

/// The MLP activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Exact GELU, `torch.nn.GELU()` (OpenCLIP-trained models).
    GeluErf,
    /// `x * sigmoid(1.702 x)` (OpenAI weights, OpenCLIP `*-quickgelu`).
    QuickGelu,
}

impl Activation {
    /// Applies the activation.
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::GeluErf => x.gelu_erf(),
            Activation::QuickGelu => x.mul(&candle_nn::ops::sigmoid(&(x * 1.702)?)?),
        }
    }
}

/// `nn.MultiheadAttention` with the packed `in_proj_weight` ([3d, d], rows q;k;v) and `out_proj`.
#[derive(Debug, Clone)]
pub struct Attention {
    in_proj: Linear,
    out_proj: Linear,
    heads: usize,
}

impl Attention {
    /// Loads `in_proj_weight`, `in_proj_bias`, `out_proj.{weight,bias}` under `vb`.
    pub fn new(vb: VarBuilder, width: usize, heads: usize) -> Result<Self> {
        let w = vb.get((3 * width, width), "in_proj_weight")?;
        let b = vb.get(3 * width, "in_proj_bias")?;
        let in_proj = Linear::from_tensors(w, Some(b));
        let out_proj = Linear::new(vb.pp("out_proj"), width, width, true)?;
        Ok(Self {
            in_proj,
            out_proj,
            heads,
        })
    }

    /// Self-attention over `x` [B, L, D] with an optional additive mask [L, L].
    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let h = self.heads;
        // One GEMM for q, k and v; the heads are split by the kernel or by one permute.
        let qkv = self.in_proj.forward(x)?;
        if cpu_kernels::applies(&qkv) {
            // Inference on CPU: one fused kernel (same math, no head permutes).
            let y = cpu_kernels::attention(&qkv, h, mask)?;
            return self.out_proj.forward(&y);
        }
        if fused::enabled(&[&qkv]) {
            // Training on CPU: one op with its own backward (see `fused`).
            let y = fused::attention(&qkv, h, mask)?;
            return self.out_proj.forward(&y);
        }
        self.out_proj.forward(&attention_composed(&qkv, h, mask)?)
    }
}

/// Multi-head self-attention from the packed projection `qkv` `[B, L, 3·D]` to the merged heads
/// `[B, L, D]` with Candle's composed (differentiable) ops: the path on GPUs and in half
/// precision, and the reference the fused kernels ([`cpu_kernels::attention`],
/// [`fused::attention`]) are tested against.
pub fn attention_composed(qkv: &Tensor, heads: usize, mask: Option<&Tensor>) -> Result<Tensor> {
    let (b, l, d3) = qkv.dims3()?;
    let d = d3 / 3;
    let hd = d / heads;
    let qkv = qkv
        .reshape((b, l, 3, heads, hd))?
        .permute((2, 0, 3, 1, 4))?;
    let q = (qkv.get(0)? * (hd as f64).powf(-0.5))?.contiguous()?;
    let k = qkv.get(1)?.contiguous()?;
    let v = qkv.get(2)?.contiguous()?;
    let mut att = q.matmul(&k.t()?)?; // [B, H, L, L]
    if let Some(m) = mask {
        att = att.broadcast_add(&m.to_dtype(att.dtype())?)?;
    }
    let att = softmax_last(&att)?;
    let y = att.matmul(&v)?; // [B, H, L, hd]
    y.transpose(1, 2)?.reshape((b, l, d))
}

/// OpenCLIP `ResidualAttentionBlock`: `x += attn(ln_1(x)); x += mlp(ln_2(x))`.
#[derive(Debug, Clone)]
pub struct ResidualBlock {
    ln_1: LayerNorm,
    attn: Attention,
    ln_2: LayerNorm,
    c_fc: Linear,
    c_proj: Linear,
    act: Activation,
}

impl ResidualBlock {
    /// Loads one block (`ln_1`, `attn`, `ln_2`, `mlp.c_fc`, `mlp.c_proj`) under `vb`.
    pub fn new(
        vb: VarBuilder,
        width: usize,
        heads: usize,
        mlp_width: usize,
        act: Activation,
    ) -> Result<Self> {
        Ok(Self {
            ln_1: LayerNorm::new(vb.pp("ln_1"), width)?,
            attn: Attention::new(vb.pp("attn"), width, heads)?,
            ln_2: LayerNorm::new(vb.pp("ln_2"), width)?,
            c_fc: Linear::new(vb.pp("mlp.c_fc"), width, mlp_width, true)?,
            c_proj: Linear::new(vb.pp("mlp.c_proj"), mlp_width, width, true)?,
            act,
        })
    }

    /// Applies the block to `x` [B, L, D].
    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let x = (x + self.attn.forward(&self.ln_1.forward(x)?, mask)?)?;
        let h = self.ln_2.forward(&x)?;
        let hidden = match self.act {
            Activation::GeluErf => self.c_fc.forward_gelu(&h)?,
            act => act.apply(&self.c_fc.forward(&h)?)?,
        };
        x + self.c_proj.forward(&hidden)?
    }

    /// The block as one segment of a segmented training forward pass
    /// ([`crate::recompute`]), with an optional additive `[L, L]` mask: its own backward pass
    /// ([`fused`]'s block, no autograd graph inside the block) where the fused ops
    /// apply (CPU f32 parameters of a training graph, exact GELU, both biases of every
    /// linear layer); otherwise [`Self::forward`] through Candle's autograd.
    pub fn segment<'a>(&'a self, mask: Option<Tensor>) -> Result<Segment<'a>> {
        if self.act == Activation::GeluErf {
            if let Some(params) = self.parameters() {
                if fused::enabled_host(&params.iter().collect::<Vec<_>>()) {
                    let seg = fused::BlockSegment::new(params, self.attn.heads, mask.as_ref())?;
                    return Ok(Segment::Own(Box::new(seg)));
                }
            }
        }
        Ok(Segment::graph(move |x| self.forward(x, mask.as_ref())))
    }

    /// The twelve parameters in OpenCLIP's order (`ln_1`, `attn.in_proj`, `attn.out_proj`,
    /// `ln_2`, `mlp.c_fc`, `mlp.c_proj`; weight then bias), if every linear layer has a bias.
    fn parameters(&self) -> Option<[Tensor; 12]> {
        let lin = |l: &Linear| Some((l.weight.clone(), l.bias.clone()?));
        let (inw, inb) = lin(&self.attn.in_proj)?;
        let (outw, outb) = lin(&self.attn.out_proj)?;
        let (fcw, fcb) = lin(&self.c_fc)?;
        let (projw, projb) = lin(&self.c_proj)?;
        Some([
            self.ln_1.weight.clone(),
            self.ln_1.bias.clone(),
            inw,
            inb,
            outw,
            outb,
            self.ln_2.weight.clone(),
            self.ln_2.bias.clone(),
            fcw,
            fcb,
            projw,
            projb,
        ])
    }
}

/// The fused residual block (tic-kernels) as a segment of [`crate::recompute`]: what it saves
/// is its [`fused::BlockTape`].
impl OwnBackward for fused::BlockSegment {
    fn forward_saving(&self, x: &Tensor) -> Result<(Tensor, Saved)> {
        let (out, tape) = self.forward_taped(x)?;
        Ok((out, Box::new(tape)))
    }

    fn backward(&self, x: &Tensor, saved: Saved, grad: &Tensor) -> Result<(Tensor, GradStore)> {
        let Ok(tape) = saved.downcast::<fused::BlockTape>() else {
            candle_core::bail!("tic-fused-block: backward given another segment's record");
        };
        self.backward_taped(x, *tape, grad)
    }
}

/// A stack of residual blocks (`resblocks.{i}`).
#[derive(Debug, Clone)]
pub struct Transformer {
    blocks: Vec<ResidualBlock>,
}

impl Transformer {
    /// Loads `resblocks.0 .. resblocks.{layers-1}` under `vb`.
    pub fn new(
        vb: VarBuilder,
        width: usize,
        layers: usize,
        heads: usize,
        mlp_width: usize,
        act: Activation,
    ) -> Result<Self> {
        let vb = vb.pp("resblocks");
        let blocks = (0..layers)
            .map(|i| ResidualBlock::new(vb.pp(i), width, heads, mlp_width, act))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { blocks })
    }

    /// The residual blocks, in order.
    pub fn blocks(&self) -> &[ResidualBlock] {
        &self.blocks
    }

    /// Applies all blocks to `x` [B, L, D].
    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let mut x = x.clone();
        for b in &self.blocks {
            x = b.forward(&x, mask)?;
        }
        Ok(x)
    }
}
