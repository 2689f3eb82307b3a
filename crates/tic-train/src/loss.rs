//! OpenCLIP's contrastive loss (`open_clip/loss.py` `ClipLoss`) and the LwF distillation term.
//!
//! Data-parallel training uses OpenCLIP's `local_loss`: a rank's rows (its own samples) are
//! scored against the columns of every rank's samples, with labels `arange(m) + m·rank`
//! ([`clip_loss_local`]); with one process rows and columns are the same and it is `ClipLoss`.

use candle_core::{Result, Tensor, D};

/// `[m, total]` with ones at `(i, offset + i)`: the targets of rows `offset..offset+m`.
fn target_mask(m: usize, total: usize, offset: usize, like: &Tensor) -> Result<Tensor> {
    let eye = Tensor::eye(m, like.dtype(), like.device())?;
    if m == total {
        return Ok(eye);
    }
    let zeros = |n: usize| Tensor::zeros((m, n), like.dtype(), like.device());
    Tensor::cat(&[zeros(offset)?, eye, zeros(total - offset - m)?], 1)
}

/// Row-wise cross-entropy with column `offset + i` as the target of row `i`:
/// `mean_i(logsumexp(x_i) − x_{i,offset+i})` (the diagonal when `offset` is 0 and the logits
/// are square). One fused op on CPU f32 ([`tic_kernels::fused`]), composed ops elsewhere.
fn shifted_diagonal_cross_entropy(logits: &Tensor, offset: usize) -> Result<Tensor> {
    if tic_kernels::fused::enabled(&[logits]) {
        return tic_kernels::fused::shifted_diagonal_cross_entropy(logits, offset);
    }
    let (m, total) = logits.dims2()?;
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let lse = (logits
        .broadcast_sub(&max)?
        .exp()?
        .sum_keepdim(D::Minus1)?
        .log()?
        + &max)?;
    let mask = target_mask(m, total, offset, logits)?;
    let diag = (logits * mask)?.sum_keepdim(D::Minus1)?;
    (lse - diag)?.mean_all()
}

/// The image→text and text→image logits: `s·I·Tᵀ` and its transpose (`ClipLoss.get_logits`).
pub fn clip_logits(img: &Tensor, txt: &Tensor, scale: &Tensor) -> Result<(Tensor, Tensor)> {
    local_logits(img, txt, img, txt, scale)
}

/// `ClipLoss()(image_features, text_features, logit_scale.exp())`: the mean of the two
/// cross-entropies with labels `0..N`. `scale` is the exponentiated logit scale (a scalar).
pub fn clip_loss(img: &Tensor, txt: &Tensor, scale: &Tensor) -> Result<Tensor> {
    clip_loss_local(img, txt, img, txt, scale, 0)
}

/// The image→text and text→image logits of local rows against all columns:
/// `s·I_rows·T_allᵀ` and `s·T_rows·I_allᵀ` (OpenCLIP `ClipLoss.get_logits` with `local_loss`).
pub fn local_logits(
    img_rows: &Tensor,
    txt_rows: &Tensor,
    img_all: &Tensor,
    txt_all: &Tensor,
    scale: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let per_image = img_rows.matmul(&txt_all.t()?)?.broadcast_mul(scale)?;
    let per_text = txt_rows.matmul(&img_all.t()?)?.broadcast_mul(scale)?;
    Ok((per_image, per_text))
}

/// `ClipLoss(local_loss=True)` on one rank: its `m` rows (`img_rows`, `txt_rows`) against the
/// gathered features of every rank (`img_all`, `txt_all`, `[W·m, d]`), with the label of row
/// `i` at column `offset + i` (`offset = m·rank`). The mean of this over ranks is the CLIP loss
/// of the global batch. With one process (`rows = all`, `offset = 0`) it is [`clip_loss`].
pub fn clip_loss_local(
    img_rows: &Tensor,
    txt_rows: &Tensor,
    img_all: &Tensor,
    txt_all: &Tensor,
    scale: &Tensor,
    offset: usize,
) -> Result<Tensor> {
    let (a, b) = local_logits(img_rows, txt_rows, img_all, txt_all, scale)?;
    (shifted_diagonal_cross_entropy(&a, offset)? + shifted_diagonal_cross_entropy(&b, offset)?)?
        * 0.5
}

/// `KL(softmax(teacher) ‖ softmax(student))` over rows, averaged over rows.
fn kl_rows(teacher: &Tensor, student: &Tensor) -> Result<Tensor> {
    let lt = candle_nn::ops::log_softmax(teacher, D::Minus1)?;
    let ls = candle_nn::ops::log_softmax(student, D::Minus1)?;
    let pt = lt.exp()?;
    (pt * (lt - ls)?)?.sum(D::Minus1)?.mean_all()
}

/// LwF distillation: the mean of the row-wise KL divergences between the frozen previous
/// model's (teacher) and the current model's image→text and text→image logit distributions on
/// the batch. Teacher logits must be detached.
pub fn distillation_loss(
    student: (&Tensor, &Tensor),
    teacher: (&Tensor, &Tensor),
) -> Result<Tensor> {
    (kl_rows(teacher.0, student.0)? + kl_rows(teacher.1, student.1)?)? * 0.5
}
