//! The gradient of one optimizer step, on one rank of W: forward, OpenCLIP's contrastive loss
//! over the global batch, backward, and the gradient synchronisation of data parallelism.
//!
//! What it computes is OpenCLIP's `ClipLoss(local_loss=True, gather_with_grad=True)` under DDP,
//! as DataComp trains:
//! 1. every micro-batch of this rank is encoded; with `accum_freq > 1` the features are cached
//!    without gradient (OpenCLIP's accumulation), and re-computed with gradient in step 4;
//! 2. the rank's features (and the LwF teacher's) are all-gathered: `[W·m, d]`, rank order;
//! 3. the rank's loss `L_r` (its `m` rows against all `W·m` columns, labels `arange(m) + m·r`,
//!    plus the LwF term) is differentiated with respect to the gathered features and the
//!    logit scale, as leaves. The backward of the all-gather is a reduce-scatter (sum): rank r
//!    receives `Σ_s ∂L_s/∂f_r` for its own features;
//! 4. each micro-batch is backpropagated through the towers from those feature gradients (the
//!    surrogate `Σ f·g + s·∂L/∂s`, whose gradient is exactly the chain rule's);
//! 5. parameter gradients and the loss are averaged over ranks with one all-reduce per large
//!    bucket, so every rank holds the gradient of the global-batch loss `(1/W) Σ_r L_r`.
//!
//! With one process every collective is the identity and this is the single-process step:
//! the same operations in the same order as differentiating the loss in one graph.

use anyhow::{Context, Result};
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use tic_dist::Comm;
use tic_model::recompute::{Keep, Recompute};
use tic_model::Clip;

use crate::loss::{clip_loss_local, distillation_loss, local_logits};
use crate::optim::AdamW;

/// Largest gradient bucket of one all-reduce, in f32 elements (64 MiB).
pub const BUCKET_ELEMS: usize = 1 << 24;

/// How the step's loss is formed and synchronised.
pub struct Objective<'a> {
    /// The job's communicator ([`tic_dist::Solo`] for one process).
    pub comm: &'a dyn Comm,
    /// Backpropagate through the all-gather (a reduce-scatter of feature gradients), as
    /// OpenCLIP's `--gather-with-grad`, which DataComp always sets. Without it each rank only
    /// differentiates its own features' terms (OpenCLIP without the flag): a different, biased
    /// gradient, kept to show the difference.
    pub gather_with_grad: bool,
    /// Weight of the LwF distillation term (used when a teacher is given).
    pub distill_weight: f64,
    /// Gradient checkpointing: the towers keep only their residual blocks' inputs and re-run
    /// each block during the backward pass ([`Clip::forward_recompute`]).
    pub grad_checkpointing: bool,
}

/// A step's global loss and the synchronised parameter gradients (in [`AdamW::params`] order).
pub struct StepGrads {
    /// The global-batch loss `(1/W) Σ_r L_r`.
    pub loss: f64,
    /// Gradients averaged over ranks; `None` where a parameter got none.
    pub grads: Vec<Option<Tensor>>,
}

fn f32(t: &Tensor) -> candle_core::Result<Tensor> {
    t.to_dtype(DType::F32)
}

/// Concatenates rows; one tensor is returned as it is.
fn cat_rows(parts: Vec<Tensor>) -> candle_core::Result<Tensor> {
    if parts.len() == 1 {
        return Ok(parts.into_iter().next().expect("one"));
    }
    Tensor::cat(&parts, 0)
}

/// Splits `[n, Σ widths]` into its column blocks.
fn split_cols(t: &Tensor, widths: &[usize]) -> candle_core::Result<Vec<Tensor>> {
    if widths.len() == 1 {
        return Ok(vec![t.clone()]);
    }
    let mut lo = 0;
    widths
        .iter()
        .map(|&w| {
            let part = t.narrow(1, lo, w)?.contiguous();
            lo += w;
            part
        })
        .collect()
}

/// One micro-batch encoded for training: f32 features without graph, the records of the
/// segmented forward pass that differentiate them (one segment per residual block), and the
/// live exponentiated logit scale.
struct Encoded<'a> {
    img: Tensor,
    txt: Tensor,
    scale: Tensor,
    tapes: (Recompute<'a>, Recompute<'a>),
}

impl<'a> Encoded<'a> {
    /// Encodes a micro-batch. Both modes run the backward pass block by block, last block
    /// first, freeing each block's activations once it is differentiated (Candle's one-graph
    /// backward would keep them all to the end); with `checkpointing` the forward pass keeps
    /// only the blocks' inputs and the backward pass re-runs each block.
    fn new(model: &'a Clip, im: &Tensor, tk: &Tensor, checkpointing: bool) -> Result<Self> {
        let keep = if checkpointing {
            Keep::Inputs
        } else {
            Keep::Graphs
        };
        let r = model.forward_segmented(im, tk, DType::F32, keep)?;
        Ok(Self {
            img: r.image,
            txt: r.text,
            scale: f32(&model.logit_scale.exp()?)?,
            tapes: (r.image_tape, r.text_tape),
        })
    }

    /// Backpropagates the gradients of the features and of the scale through the model and
    /// hands each gradient store (one per segment, and the scale's) to `each` as soon as it is
    /// computed.
    fn backward(
        self,
        g_img: &Tensor,
        g_txt: &Tensor,
        g_scale: &Tensor,
        each: impl FnMut(GradStore) -> Result<()>,
    ) -> Result<()> {
        let (image, text) = self.tapes;
        let mut each = each;
        let mut each = |s| each(s).map_err(candle_core::Error::wrap);
        image.backward(g_img, &mut each)?;
        text.backward(g_txt, &mut each)?;
        each((self.scale * g_scale)?.backward()?)?;
        Ok(())
    }
}

/// Features of `model` on this rank's micro-batches, as f32 without gradient: (image rows,
/// text rows, exponentiated logit scale).
fn encode_detached(
    model: &Clip,
    inputs: &[(Tensor, Tensor)],
    checkpointing: bool,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (mut imgs, mut txts, mut scale) = (Vec::new(), Vec::new(), None);
    for (im, tk) in inputs {
        let e = Encoded::new(model, im, tk, checkpointing)?;
        imgs.push(e.img.detach());
        txts.push(e.txt.detach());
        scale = Some(e.scale.detach());
    }
    Ok((
        cat_rows(imgs)?,
        cat_rows(txts)?,
        scale.context("no micro-batch")?,
    ))
}

/// Step 1's features of this rank, as f32 without gradient: image rows, text rows, the
/// exponentiated logit scale, and the LwF teacher's (image rows, text rows, scale).
struct Features {
    img: Tensor,
    txt: Tensor,
    scale: Tensor,
    teacher: Option<(Tensor, Tensor, Tensor)>,
}

/// Step 3's result: this rank's loss and the gradients it gets for its own features (after
/// step 3's reduce-scatter) and for the scale.
struct FeatureGrads {
    loss: f64,
    img: Tensor,
    txt: Tensor,
    scale: Tensor,
}

impl Objective<'_> {
    /// The synchronised gradient of one optimizer step over `inputs` (this rank's micro-batches,
    /// `(images, token ids)` on the model's device). `teacher` adds the LwF term.
    pub fn gradients(
        &self,
        model: &Clip,
        teacher: Option<&Clip>,
        inputs: &[(Tensor, Tensor)],
        opt: &AdamW,
    ) -> Result<StepGrads> {
        let (live, features) = self.forward(model, teacher, inputs)?;
        let g = self.feature_gradients(features)?;
        let mut sum = self.backward_towers(model, live, inputs, &g, opt)?;
        // 5. Average over ranks (one process: every collective is the identity and is skipped).
        let mut loss_value = g.loss;
        if !self.comm.is_identity() {
            loss_value = all_reduce_mean(self.comm, &mut sum, loss_value)?;
        }
        Ok(StepGrads {
            loss: loss_value,
            grads: sum,
        })
    }

    /// Step 1, the forward pass. One micro-batch keeps its graph (or checkpoints) for step 4
    /// (returned); several are recomputed there.
    fn forward<'m>(
        &self,
        model: &'m Clip,
        teacher: Option<&Clip>,
        inputs: &[(Tensor, Tensor)],
    ) -> Result<(Option<Encoded<'m>>, Features)> {
        let ckpt = self.grad_checkpointing;
        let mut live = None;
        let (img, txt, scale) = if inputs.len() == 1 {
            let e = Encoded::new(model, &inputs[0].0, &inputs[0].1, ckpt)?;
            let detached = (e.img.detach(), e.txt.detach(), e.scale.detach());
            live = Some(e);
            detached
        } else {
            encode_detached(model, inputs, ckpt)?
        };
        // The teacher has no trainable variables: Candle records no graph for it.
        let teacher = teacher
            .map(|t| encode_detached(t, inputs, false))
            .transpose()?;
        Ok((
            live,
            Features {
                img,
                txt,
                scale,
                teacher,
            },
        ))
    }

    /// Step 2, the all-gather (one call: student and teacher features side by side), and step
    /// 3: this rank's loss, differentiated with respect to the gathered features and the
    /// scale, and the feature gradients this rank keeps.
    fn feature_gradients(&self, f: Features) -> Result<FeatureGrads> {
        let rank = self.comm.rank();
        let m = f.img.dim(0)?;
        let width = f.img.dim(1)?;
        let mut packed = vec![f.img, f.txt];
        if let Some((ti, tt, _)) = &f.teacher {
            packed.extend([ti.clone(), tt.clone()]);
        }
        let widths = vec![width; packed.len()];
        let gathered = if self.comm.is_identity() {
            packed
        } else {
            let all = self.comm.all_gather(&Tensor::cat(&packed, 1)?)?;
            split_cols(&all, &widths)?
        };
        let all_img = Var::from_tensor(&gathered[0])?;
        let all_txt = Var::from_tensor(&gathered[1])?;
        let scale = Var::from_tensor(&f.scale)?;
        let offset = rank * m;
        let own_img = all_img.as_tensor().narrow(0, offset, m)?;
        let own_txt = all_txt.as_tensor().narrow(0, offset, m)?;
        let (ai, at, s) = (all_img.as_tensor(), all_txt.as_tensor(), scale.as_tensor());
        let mut loss = clip_loss_local(&own_img, &own_txt, ai, at, s, offset)?;
        if let Some((_, _, teacher_scale)) = &f.teacher {
            let (ti, tt) = (&gathered[2], &gathered[3]);
            let student = local_logits(&own_img, &own_txt, ai, at, s)?;
            let target = local_logits(
                &ti.narrow(0, offset, m)?,
                &tt.narrow(0, offset, m)?,
                ti,
                tt,
                teacher_scale,
            )?;
            let d = distillation_loss((&student.0, &student.1), (&target.0, &target.1))?;
            loss = (loss + (d * self.distill_weight)?)?;
        }
        let loss_value = loss.to_scalar::<f32>()? as f64;
        let g = loss.backward()?;
        let grad_of = |v: &Var| -> Result<Tensor> {
            Ok(match g.get(v.as_tensor()) {
                Some(t) => t.detach(),
                None => v.as_tensor().zeros_like()?,
            })
        };
        let (d_img, d_txt, d_scale) = (grad_of(&all_img)?, grad_of(&all_txt)?, grad_of(&scale)?);
        drop(g);
        let (img, txt) = self.own_feature_gradients(d_img, d_txt, offset, m, width)?;
        Ok(FeatureGrads {
            loss: loss_value,
            img,
            txt,
            scale: d_scale,
        })
    }

    /// The gradients of this rank's own `m` feature rows (at `offset`) from those of every
    /// gathered row: the all-gather's backward, a reduce-scatter (sum), with
    /// `gather_with_grad`; this rank's rows only without it.
    fn own_feature_gradients(
        &self,
        d_img: Tensor,
        d_txt: Tensor,
        offset: usize,
        m: usize,
        width: usize,
    ) -> Result<(Tensor, Tensor)> {
        Ok(if self.comm.is_identity() {
            (d_img, d_txt)
        } else if self.gather_with_grad {
            let mine = self
                .comm
                .reduce_scatter_sum(&Tensor::cat(&[d_img, d_txt], 1)?)?;
            let v = split_cols(&mine, &[width, width])?;
            (v[0].clone(), v[1].clone())
        } else {
            (
                d_img.narrow(0, offset, m)?.contiguous()?,
                d_txt.narrow(0, offset, m)?.contiguous()?,
            )
        })
    }

    /// Step 4, the backward pass through the towers, one micro-batch at a time (`live`: step
    /// 1's encoding of a single micro-batch); returns the parameter gradients summed over
    /// micro-batches.
    fn backward_towers<'m>(
        &self,
        model: &'m Clip,
        mut live: Option<Encoded<'m>>,
        inputs: &[(Tensor, Tensor)],
        g: &FeatureGrads,
        opt: &AdamW,
    ) -> Result<Vec<Option<Tensor>>> {
        let mut sum: Vec<Option<Tensor>> = vec![None; opt.params.len()];
        let mut lo = 0;
        for (im, tk) in inputs {
            let e = match live.take() {
                Some(e) => e,
                None => Encoded::new(model, im, tk, self.grad_checkpointing)?,
            };
            let n = e.img.dim(0)?;
            let accumulate = |g: GradStore| -> Result<()> {
                for (acc, gi) in sum.iter_mut().zip(opt.grads(&g)) {
                    *acc = match (acc.take(), gi) {
                        (Some(a), Some(b)) => Some((a + b)?),
                        (a, b) => a.or(b),
                    };
                }
                Ok(())
            };
            let (gi, gt) = (g.img.narrow(0, lo, n)?, g.txt.narrow(0, lo, n)?);
            e.backward(&gi, &gt, &g.scale, accumulate)?;
            lo += n;
        }
        Ok(sum)
    }
}

/// Averages `grads` (and one extra scalar, the loss) over ranks in place, as a few flat
/// buckets of at most [`BUCKET_ELEMS`] elements: one all-reduce per bucket, never one per
/// tensor. Returns the averaged scalar.
pub fn all_reduce_mean(comm: &dyn Comm, grads: &mut [Option<Tensor>], extra: f64) -> Result<f64> {
    let w = comm.size() as f64;
    let present: Vec<usize> = (0..grads.len()).filter(|&i| grads[i].is_some()).collect();
    let mut buckets: Vec<Vec<usize>> = vec![Vec::new()];
    let mut filled = 0;
    for &i in &present {
        let n = grads[i].as_ref().expect("present").elem_count();
        if filled > 0 && filled + n > BUCKET_ELEMS {
            buckets.push(Vec::new());
            filled = 0;
        }
        buckets.last_mut().expect("non-empty").push(i);
        filled += n;
    }
    let dev = present
        .first()
        .map(|&i| grads[i].as_ref().expect("present").device().clone())
        .unwrap_or(candle_core::Device::Cpu);
    let last = buckets.len() - 1;
    let mut extra_mean = extra;
    for (b, members) in buckets.iter().enumerate() {
        let mut parts = members
            .iter()
            .map(|&i| f32(grads[i].as_ref().expect("present"))?.flatten_all())
            .collect::<candle_core::Result<Vec<_>>>()?;
        if b == last {
            parts.push(Tensor::new(&[extra as f32], &dev)?);
        }
        let flat = comm.all_reduce_sum(&Tensor::cat(&parts, 0)?)?;
        let mean = (flat / w)?;
        let mut lo = 0;
        for &i in members {
            let g = grads[i].as_mut().expect("present");
            let n = g.elem_count();
            *g = mean
                .narrow(0, lo, n)?
                .reshape(g.shape())?
                .to_dtype(g.dtype())?;
            lo += n;
        }
        if b == last {
            extra_mean = mean.narrow(0, lo, 1)?.to_vec1::<f32>()?[0] as f64;
        }
    }
    Ok(extra_mean)
}

/// Bytes one optimizer step moves per rank through each collective (f32 on the wire), for a
/// model with `params` parameter elements, `m` samples per rank, feature width `d`, `world`
/// ranks, with or without an LwF teacher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CommVolume {
    /// The gradient all-reduce (all parameters + the loss).
    pub all_reduce: u64,
    /// The feature all-gather (received).
    pub all_gather: u64,
    /// The feature-gradient reduce-scatter (sent).
    pub reduce_scatter: u64,
}

impl CommVolume {
    /// The volume of one step (see the type's docs).
    pub fn of(params: u64, m: u64, d: u64, world: u64, teacher: bool) -> Self {
        let cols = if teacher { 4 } else { 2 };
        Self {
            all_reduce: 4 * (params + 1),
            all_gather: 4 * world * m * d * cols,
            reduce_scatter: 4 * world * m * d * 2,
        }
    }
}
