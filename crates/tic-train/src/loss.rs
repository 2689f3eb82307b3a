//! OpenCLIP's contrastive loss (`open_clip/loss.py` `ClipLoss`, one process) and the LwF
//! distillation term.

use candle_core::{Result, Tensor, D};

/// Row-wise cross-entropy with the diagonal as target: `mean_i(logsumexp(x_i) − x_ii)`.
fn diagonal_cross_entropy(logits: &Tensor) -> Result<Tensor> {
    let n = logits.dim(0)?;
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let lse = (logits
        .broadcast_sub(&max)?
        .exp()?
        .sum_keepdim(D::Minus1)?
        .log()?
        + &max)?;
    let eye = Tensor::eye(n, logits.dtype(), logits.device())?;
    let diag = (logits * eye)?.sum_keepdim(D::Minus1)?;
    (lse - diag)?.mean_all()
}

/// The image→text and text→image logits: `s·I·Tᵀ` and its transpose (`ClipLoss.get_logits`).
pub fn clip_logits(img: &Tensor, txt: &Tensor, scale: &Tensor) -> Result<(Tensor, Tensor)> {
    let per_image = img.matmul(&txt.t()?)?.broadcast_mul(scale)?;
    let per_text = txt.matmul(&img.t()?)?.broadcast_mul(scale)?;
    Ok((per_image, per_text))
}

/// `ClipLoss()(image_features, text_features, logit_scale.exp())`: the mean of the two
/// cross-entropies with labels `0..N`. `scale` is the exponentiated logit scale (a scalar).
pub fn clip_loss(img: &Tensor, txt: &Tensor, scale: &Tensor) -> Result<Tensor> {
    let (a, b) = clip_logits(img, txt, scale)?;
    (diagonal_cross_entropy(&a)? + diagonal_cross_entropy(&b)?)? * 0.5
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
