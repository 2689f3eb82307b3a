//! The CLIP model: OpenCLIP's `VisionTransformer`, text transformer and `logit_scale`, with
//! OpenCLIP's parameter names (see [`crate::init::param_specs`] for the full list).

use std::collections::HashMap;

use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::{Embedding, VarBuilder};

use crate::config::ClipConfig;
use crate::init::param_specs;
use crate::nn::{Activation, LayerNorm, Transformer};

/// OpenCLIP `VisionTransformer` (CLS pooling after `ln_post`, then `@ proj`).
#[derive(Debug, Clone)]
pub struct VisionTransformer {
    conv1: Tensor,
    class_embedding: Tensor,
    positional_embedding: Tensor,
    ln_pre: LayerNorm,
    transformer: Transformer,
    ln_post: LayerNorm,
    proj: Tensor,
    patch: usize,
    grid: usize,
    width: usize,
}

impl VisionTransformer {
    /// Loads the tower from `vb` (normally `root.pp("visual")`).
    pub fn new(vb: VarBuilder, cfg: &ClipConfig, act: Activation) -> Result<Self> {
        let v = &cfg.vision_cfg;
        let (w, p) = (v.width, v.patch_size);
        Ok(Self {
            conv1: vb.get((w, 3, p, p), "conv1.weight")?,
            class_embedding: vb.get(w, "class_embedding")?,
            positional_embedding: vb.get((v.num_tokens(), w), "positional_embedding")?,
            ln_pre: LayerNorm::new(vb.pp("ln_pre"), w)?,
            transformer: Transformer::new(
                vb.pp("transformer"),
                w,
                v.layers,
                v.heads(),
                v.mlp_width(),
                act,
            )?,
            ln_post: LayerNorm::new(vb.pp("ln_post"), w)?,
            proj: vb.get((w, cfg.embed_dim), "proj")?,
            patch: p,
            grid: v.grid(),
            width: w,
        })
    }

    /// Patch embedding as one GEMM: `[B,3,H,W]` → `[B, grid², width]` (same result as the
    /// stride-`p` convolution with `conv1.weight` [width,3,p,p]).
    fn patch_embed(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let (p, g) = (self.patch, self.grid);
        if c != 3 || h != g * p || w != g * p {
            candle_core::bail!(
                "image batch must be [B,3,{},{}], got {:?}",
                g * p,
                g * p,
                x.dims()
            );
        }
        let patches = x
            .reshape((b, 3, g, p, g, p))?
            .permute((0, 2, 4, 1, 3, 5))?
            .contiguous()?
            .reshape((b * g * g, 3 * p * p))?;
        let wmat = self.conv1.reshape((self.width, 3 * p * p))?;
        patches.matmul(&wmat.t()?)?.reshape((b, g * g, self.width))
    }

    /// Image features before normalisation: `[B,3,S,S]` pixels → `[B, embed_dim]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.to_dtype(self.conv1.dtype())?;
        let b = x.dim(0)?;
        let patches = self.patch_embed(&x)?;
        let cls = self
            .class_embedding
            .reshape((1, 1, self.width))?
            .broadcast_as((b, 1, self.width))?;
        let x = Tensor::cat(&[&cls, &patches], 1)?;
        let x = x.broadcast_add(&self.positional_embedding)?;
        let x = self.ln_pre.forward(&x)?;
        let x = self.transformer.forward(&x, None)?;
        // Pool the class token, then `ln_post` (per-token, so the same as normalising every
        // token first, as OpenCLIP does when `final_ln_after_pool` is off, on 1/197 of the rows).
        // Contiguous for the projection GEMM (MKL refuses the strided view).
        let pooled = x.narrow(1, 0, 1)?.squeeze(1)?.contiguous()?;
        self.ln_post.forward(&pooled)?.matmul(&self.proj)
    }
}

/// OpenCLIP's text tower (the text half of `CLIP`): causal transformer, `ln_final`, pooling at the
/// end-of-text token (argmax of the ids), `@ text_projection`.
#[derive(Debug, Clone)]
pub struct TextTransformer {
    token_embedding: Embedding,
    positional_embedding: Tensor,
    transformer: Transformer,
    ln_final: LayerNorm,
    text_projection: Tensor,
    mask: Tensor,
    context_length: usize,
}

/// Additive causal mask `[L, L]`: 0 on and below the diagonal, −∞ above.
pub fn causal_mask(l: usize, device: &Device) -> Result<Tensor> {
    let m: Vec<f32> = (0..l)
        .flat_map(|i| (0..l).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(m, (l, l), device)
}

impl TextTransformer {
    /// Loads the text tower from the model root `vb` (its names have no prefix).
    pub fn new(vb: VarBuilder, cfg: &ClipConfig, act: Activation) -> Result<Self> {
        let t = &cfg.text_cfg;
        let emb = vb.get((t.vocab_size, t.width), "token_embedding.weight")?;
        Ok(Self {
            token_embedding: Embedding::new(emb, t.width),
            positional_embedding: vb.get((t.context_length, t.width), "positional_embedding")?,
            transformer: Transformer::new(
                vb.pp("transformer"),
                t.width,
                t.layers,
                t.heads,
                t.mlp_width(),
                act,
            )?,
            ln_final: LayerNorm::new(vb.pp("ln_final"), t.width)?,
            text_projection: vb.get((t.width, cfg.embed_dim), "text_projection")?,
            mask: causal_mask(t.context_length, vb.device())?,
            context_length: t.context_length,
        })
    }

    /// Text features before normalisation: ids `[B, L]` (u32/i64) → `[B, embed_dim]`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, l) = ids.dims2()?;
        if l != self.context_length {
            candle_core::bail!(
                "token batch must have {} columns, got {l}",
                self.context_length
            );
        }
        let ids = ids.to_dtype(DType::U32)?;
        // Pool at argmax(ids) (the first end-of-text token).
        let eot = ids.argmax(D::Minus1)?; // [B] u32
                                          // The mask is causal, so positions after the last end-of-text token of the batch cannot
                                          // reach any pooled output (nor receive gradient from it): run the tower on the first
                                          // `keep` positions only. Prompts like "a photo of a {c}." use ~10 of 77 positions.
        let keep = eot.max(0)?.to_scalar::<u32>()? as usize + 1;
        let (ids, pos, mask) = if keep < l {
            (
                ids.narrow(1, 0, keep)?,
                self.positional_embedding.narrow(0, 0, keep)?,
                self.mask
                    .narrow(0, 0, keep)?
                    .narrow(1, 0, keep)?
                    .contiguous()?,
            )
        } else {
            (ids, self.positional_embedding.clone(), self.mask.clone())
        };
        let l = keep.min(l);
        let x = self.token_embedding.forward(&ids)?;
        let x = x.broadcast_add(&pos)?;
        let x = self.transformer.forward(&x, Some(&mask))?;
        // Gather the end-of-text tokens (a single gather, no host loop), then `ln_final`:
        // per-token, so the same as normalising every token first, on B rows instead of B·L.
        let d = x.dim(D::Minus1)?;
        let offsets = Tensor::arange_step(0u32, (b * l) as u32, l as u32, ids.device())?;
        let rows = (eot + offsets)?;
        let pooled = x.reshape((b * l, d))?.index_select(&rows, 0)?;
        self.ln_final
            .forward(&pooled)?
            .matmul(&self.text_projection)
    }
}

/// OpenCLIP's `CLIP` model.
#[derive(Debug, Clone)]
pub struct Clip {
    /// Image tower (`visual.*`).
    pub visual: VisionTransformer,
    /// Text tower (root-level names).
    pub text: TextTransformer,
    /// `logit_scale` (scalar, log of the inverse temperature).
    pub logit_scale: Tensor,
    config: ClipConfig,
    params: Vec<(String, Tensor)>,
}

/// `F.normalize(x, dim=-1)`: divide by max(‖x‖₂, 1e-12).
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let n = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.maximum(1e-12)?;
    x.broadcast_div(&n)
}

impl Clip {
    /// Builds the model from a `VarBuilder` with OpenCLIP's names (safetensors, a `VarMap` for
    /// training, ...). Shapes are checked against `cfg`.
    ///
    /// With a `VarMap` backend the model's tensors are the `Var`s themselves, so gradients
    /// computed through the model are keyed by the map's variables.
    pub fn new(cfg: &ClipConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::wrap)?;
        let act = if cfg.quick_gelu {
            Activation::QuickGelu
        } else {
            Activation::GeluErf
        };
        // Fetch every parameter once, in OpenCLIP order (this checks names and shapes), then build
        // the modules from these very tensors (same ids: no copy for matching dtype/device).
        let mut params = Vec::new();
        for spec in param_specs(cfg) {
            let t = vb.get(spec.shape.as_slice(), &spec.name)?;
            params.push((spec.name, t));
        }
        let map: HashMap<String, Tensor> = params.iter().cloned().collect();
        let vb = VarBuilder::from_tensors(map, vb.dtype(), vb.device());
        Ok(Self {
            visual: VisionTransformer::new(vb.pp("visual"), cfg, act)?,
            text: TextTransformer::new(vb.clone(), cfg, act)?,
            logit_scale: vb.get((), "logit_scale")?,
            config: cfg.clone(),
            params,
        })
    }

    /// All parameters with their OpenCLIP `state_dict` names, in OpenCLIP order.
    pub fn named_parameters(&self) -> &[(String, Tensor)] {
        &self.params
    }

    /// The configuration the model was built with.
    pub fn config(&self) -> &ClipConfig {
        &self.config
    }

    /// Unnormalised image features `[B, embed_dim]` from pixels `[B,3,S,S]`.
    pub fn encode_image(&self, images: &Tensor) -> Result<Tensor> {
        self.visual.forward(images)
    }

    /// Unnormalised text features `[B, embed_dim]` from token ids `[B, 77]`.
    pub fn encode_text(&self, ids: &Tensor) -> Result<Tensor> {
        self.text.forward(ids)
    }

    /// L2-normalised image features.
    pub fn encode_image_normalized(&self, images: &Tensor) -> Result<Tensor> {
        l2_normalize(&self.encode_image(images)?)
    }

    /// L2-normalised text features.
    pub fn encode_text_normalized(&self, ids: &Tensor) -> Result<Tensor> {
        l2_normalize(&self.encode_text(ids)?)
    }

    /// L2-normalised text features of raw strings: tokenised with CLIP's tokenizer at this
    /// model's context length (OpenCLIP's `get_tokenizer(model)`), on the model's device.
    pub fn encode_texts_normalized<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
    ) -> anyhow::Result<Tensor> {
        let ids = crate::Tokenizer::shared().tokenize_tensor_to(
            texts,
            self.config().text_cfg.context_length,
            self.text.token_embedding.embeddings().device(),
        )?;
        Ok(self.encode_text_normalized(&ids)?)
    }

    /// `CLIP.forward`: (normalised image features, normalised text features, `logit_scale.exp()`).
    pub fn forward(&self, images: &Tensor, ids: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        Ok((
            self.encode_image_normalized(images)?,
            self.encode_text_normalized(ids)?,
            self.logit_scale.exp()?,
        ))
    }
}
