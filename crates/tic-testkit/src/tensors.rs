//! How far apart two Candle tensors are: the measure the kernel, model and training tests
//! compare fused against composed ops, resumed against uninterrupted runs and Rust against
//! PyTorch with. Behind the `tensors` feature, so that only the crates whose tests hold tensors
//! build Candle for it.

use candle_core::Tensor;

/// The largest |a − b| over the elements of two f32 tensors of the same shape. Panics when the
/// shapes differ or the tensors are not f32.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}
