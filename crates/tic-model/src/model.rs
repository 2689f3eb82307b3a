//! The CLIP model: OpenCLIP's `VisionTransformer`, text transformer and `logit_scale`, with
//! OpenCLIP's parameter names (see [`crate::init::param_specs`] for the full list).

use std::collections::HashMap;

use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::{Embedding, VarBuilder};

use crate::config::ClipConfig;
use crate::init::param_specs;
use crate::nn::{Activation, LayerNorm, Transformer};
use crate::recompute::{Keep, Recompute, Segment};

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

    /// Patch, class and positional embeddings and `ln_pre`: pixels → the first block's input.
    fn embed(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.to_dtype(self.conv1.dtype())?;
        let b = x.dim(0)?;
        let patches = self.patch_embed(&x)?;
        let cls = self
            .class_embedding
            .reshape((1, 1, self.width))?
            .broadcast_as((b, 1, self.width))?;
        let x = Tensor::cat(&[&cls, &patches], 1)?;
        let x = x.broadcast_add(&self.positional_embedding)?;
        self.ln_pre.forward(&x)
    }

    /// Class-token pooling, `ln_post` and the projection: the last block's output → features.
    fn head(&self, x: &Tensor) -> Result<Tensor> {
        // Pool the class token, then `ln_post` (per-token, so the same as normalising every
        // token first, as OpenCLIP does when `final_ln_after_pool` is off, on 1/197 of the rows).
        // Contiguous for the projection GEMM (MKL refuses the strided view).
        let pooled = x.narrow(1, 0, 1)?.squeeze(1)?.contiguous()?;
        self.ln_post.forward(&pooled)?.matmul(&self.proj)
    }

    /// Image features before normalisation: `[B,3,S,S]` pixels → `[B, embed_dim]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.head(&self.transformer.forward(&self.embed(x)?, None)?)
    }

    /// [`Self::forward`] as checkpointing segments: the embeddings, each residual block, and
    /// the head followed by `finish` (e.g. normalisation).
    pub fn segments<'a>(
        &'a self,
        finish: impl Fn(Tensor) -> Result<Tensor> + 'a,
    ) -> Result<Vec<Segment<'a>>> {
        let mut segs = vec![Segment::graph(move |x| self.embed(x))];
        for b in self.transformer.blocks() {
            segs.push(b.segment(None)?);
        }
        segs.push(Segment::graph(move |x| finish(self.head(x)?)));
        Ok(segs)
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

    /// The batch's pooling rows and the positions the tower needs (see [`Self::forward`]).
    fn prepare(&self, ids: &Tensor) -> Result<TextBatch> {
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
        let offsets = Tensor::arange_step(0u32, (b * l) as u32, l as u32, ids.device())?;
        let rows = (eot + offsets)?;
        Ok(TextBatch {
            ids,
            pos,
            mask,
            rows,
        })
    }

    fn embed(&self, t: &TextBatch, ids: &Tensor) -> Result<Tensor> {
        self.token_embedding.forward(ids)?.broadcast_add(&t.pos)
    }

    /// Gathers the end-of-text tokens (a single gather, no host loop), then `ln_final`:
    /// per-token, so the same as normalising every token first, on B rows instead of B·L.
    fn head(&self, t: &TextBatch, x: &Tensor) -> Result<Tensor> {
        let (b, l, d) = x.dims3()?;
        let pooled = x.reshape((b * l, d))?.index_select(&t.rows, 0)?;
        self.ln_final
            .forward(&pooled)?
            .matmul(&self.text_projection)
    }

    /// Text features before normalisation: ids `[B, L]` (u32/i64) → `[B, embed_dim]`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let t = self.prepare(ids)?;
        let x = self.embed(&t, &t.ids)?;
        let x = self.transformer.forward(&x, Some(&t.mask))?;
        self.head(&t, &x)
    }

    /// [`Self::forward`] as checkpointing segments over the returned input (the ids the tower
    /// runs on): the embeddings, each residual block, and the head followed by `finish`.
    pub fn segments<'a>(
        &'a self,
        ids: &Tensor,
        finish: impl Fn(Tensor) -> Result<Tensor> + 'a,
    ) -> Result<(Tensor, Vec<Segment<'a>>)> {
        let t = std::rc::Rc::new(self.prepare(ids)?);
        let input = t.ids.clone();
        let t0 = t.clone();
        let mut segs = vec![Segment::graph(move |x| self.embed(&t0, x))];
        for b in self.transformer.blocks() {
            segs.push(b.segment(Some(t.mask.clone()))?);
        }
        segs.push(Segment::graph(move |x| finish(self.head(&t, x)?)));
        Ok((input, segs))
    }
}

/// A token batch prepared for the text tower: the ids and positions it runs on (up to the last
/// end-of-text token), the causal mask, and the flat row of each caption's end-of-text token.
struct TextBatch {
    ids: Tensor,
    pos: Tensor,
    mask: Tensor,
    rows: Tensor,
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

/// The result of [`Clip::forward_recompute`].
pub struct RecomputedForward<'a> {
    /// Normalised image features (no graph).
    pub image: Tensor,
    /// Normalised text features (no graph).
    pub text: Tensor,
    /// The image tower's checkpoints.
    pub image_tape: Recompute<'a>,
    /// The text tower's checkpoints.
    pub text_tape: Recompute<'a>,
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

    /// [`Self::forward`]'s normalised features, in `dtype`, with gradient checkpointing: each
    /// tower keeps only its residual blocks' inputs; [`Recompute::backward`] on the returned
    /// records, given the features' gradients, re-runs the blocks and returns the parameter
    /// gradients. The same operations as [`Self::forward`], so the same numbers.
    pub fn forward_recompute(
        &self,
        images: &Tensor,
        ids: &Tensor,
        dtype: DType,
    ) -> Result<RecomputedForward<'_>> {
        self.forward_segmented(images, ids, dtype, Keep::Inputs)
    }

    /// [`Self::forward`]'s normalised features, in `dtype`, cut into one segment per residual
    /// block (and the layers before and after them), keeping what `keep` says for the segment-
    /// by-segment backward pass of [`Recompute::backward`]: [`Keep::Inputs`] is gradient
    /// checkpointing ([`Self::forward_recompute`]); [`Keep::Graphs`] runs no block twice and
    /// frees each block's activations as soon as its backward pass is done.
    pub fn forward_segmented(
        &self,
        images: &Tensor,
        ids: &Tensor,
        dtype: DType,
        keep: Keep,
    ) -> Result<RecomputedForward<'_>> {
        let finish = move |x: Tensor| l2_normalize(&x)?.to_dtype(dtype);
        let (image, image_tape) =
            Recompute::forward_keeping(images, self.visual.segments(finish)?, keep)?;
        let (text_ids, text_segments) = self.text.segments(ids, finish)?;
        let (text, text_tape) = Recompute::forward_keeping(&text_ids, text_segments, keep)?;
        Ok(RecomputedForward {
            image,
            text,
            image_tape,
            text_tape,
        })
    }
}
