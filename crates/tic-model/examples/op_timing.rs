//! Op-by-op timing of one ViT-B-16 block's pieces at batch 32 (f32, CPU): Candle's generic
//! ops next to the fused inference kernels of `tic_model::cpu_kernels`.
//!
//!     RAYON_NUM_THREADS=2 cargo run --release -p tic-model --example op_timing

use candle_core::{Device, Tensor};
use std::time::Instant;
/// Mean of three runs after a warm-up.
fn t<F: FnMut() -> candle_core::Result<Tensor>>(name: &str, mut f: F) {
    let _ = f().unwrap();
    let s = Instant::now();
    for _ in 0..3 {
        let _ = f().unwrap();
    }
    println!("{name}: {:.3} s", s.elapsed().as_secs_f64() / 3.0);
}
fn main() {
    let d = Device::Cpu;
    let x = Tensor::randn(0f32, 1.0, (32 * 197, 3072), &d).unwrap();
    t("gelu_erf 19.4M", || x.gelu_erf());
    t("gelu(tanh) 19.4M", || x.gelu());
    let a = Tensor::randn(0f32, 1.0, (32, 12, 197, 197), &d).unwrap();
    t("softmax_last_dim 14.9M", || {
        candle_nn::ops::softmax_last_dim(&a)
    });
    let h = Tensor::randn(0f32, 1.0, (32, 197, 768), &d).unwrap();
    let w = Tensor::ones(768, candle_core::DType::F32, &d).unwrap();
    let b = Tensor::zeros(768, candle_core::DType::F32, &d).unwrap();
    t("layer_norm 4.8M", || {
        candle_nn::ops::layer_norm(&h, &w, &b, 1e-5)
    });
    let wq = Tensor::randn(0f32, 0.02, (768, 2304), &d).unwrap();
    let h2 = h.reshape((32 * 197, 768)).unwrap();
    t("matmul qkv 6304x768x2304", || h2.matmul(&wq));
    let w1 = Tensor::randn(0f32, 0.02, (768, 3072), &d).unwrap();
    t("matmul fc 6304x768x3072", || h2.matmul(&w1));
    let q = Tensor::randn(0f32, 1.0, (32, 12, 197, 64), &d).unwrap();
    let kt = Tensor::randn(0f32, 1.0, (32, 12, 64, 197), &d).unwrap();
    t("attn q@kT", || q.matmul(&kt));
    t("attn a@v", || a.matmul(&q));
    let qkv = Tensor::randn(0f32, 1.0, (32, 197, 3, 12, 64), &d).unwrap();
    t("qkv permute contiguous", || {
        qkv.permute((2, 0, 3, 1, 4)).unwrap().contiguous()
    });
    let qkv2 = Tensor::randn(0f32, 1.0, (32, 197, 2304), &d).unwrap();
    t("fused attention (kernel)", || {
        tic_model::cpu_kernels::attention(&qkv2, 12, None)
    });
    let bias = Tensor::zeros(3072, candle_core::DType::F32, &d).unwrap();
    let w1t = w1.t().unwrap().contiguous().unwrap();
    t("fused linear fc + bias + GELU (kernel)", || {
        tic_model::cpu_kernels::linear(&h2, &w1t, Some(&bias), true)
    });
}
