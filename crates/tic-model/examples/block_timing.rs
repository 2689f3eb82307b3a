//! Where one ViT-B-16 image-tower block spends its time at batch 32 (f32, CPU, inference):
//! each step of `ResidualBlock::forward` on the fused kernels, timed alone.
//!
//!     RAYON_NUM_THREADS=2 cargo run --release -p tic-model --example block_timing

use candle_core::{DType, Device, Module, Tensor};
use std::time::Instant;
use tic_kernels::cpu_kernels;

fn t<F: FnMut() -> candle_core::Result<Tensor>>(name: &str, mut f: F) -> f64 {
    let _ = f().unwrap();
    let n = 5;
    let s = Instant::now();
    for _ in 0..n {
        let _ = f().unwrap();
    }
    let dt = s.elapsed().as_secs_f64() / n as f64;
    println!("{name:<32} {:>7.1} ms", dt * 1e3);
    dt
}

fn main() {
    // As tic-eval / tic-embed do (set MALLOC_MMAP_MAX_=65536 to see glibc's default).
    tic_kernels::heap::reuse_freed_buffers();
    let d = Device::Cpu;
    let (rows, w, mlp) = (32 * 197, 768, 3072);
    let x = Tensor::randn(0f32, 1.0, (32, 197, w), &d).unwrap();
    let ones = Tensor::ones(w, DType::F32, &d).unwrap();
    let zeros = Tensor::zeros(w, DType::F32, &d).unwrap();
    let ln = tic_model::nn::LayerNorm::from_tensors(ones, zeros);
    let w_in = Tensor::randn(0f32, 0.02, (3 * w, w), &d).unwrap();
    let b_in = Tensor::randn(0f32, 0.02, 3 * w, &d).unwrap();
    let w_out = Tensor::randn(0f32, 0.02, (w, w), &d).unwrap();
    let b_out = Tensor::randn(0f32, 0.02, w, &d).unwrap();
    let w_fc = Tensor::randn(0f32, 0.02, (mlp, w), &d).unwrap();
    let b_fc = Tensor::randn(0f32, 0.02, mlp, &d).unwrap();
    let w_pr = Tensor::randn(0f32, 0.02, (w, mlp), &d).unwrap();
    let b_pr = Tensor::randn(0f32, 0.02, w, &d).unwrap();
    let x2 = x.reshape((rows, w)).unwrap();
    let qkv = cpu_kernels::linear(&x2, &w_in, Some(&b_in), false)
        .unwrap()
        .reshape((32, 197, 3 * w))
        .unwrap();
    let hid = cpu_kernels::linear(&x2, &w_fc, Some(&b_fc), true).unwrap();
    let mut total = 0.0;
    total += t("ln_1", || ln.forward(&x));
    total += t("in_proj (+bias)", || {
        cpu_kernels::linear(&x2, &w_in, Some(&b_in), false)
    });
    total += t("attention", || cpu_kernels::attention(&qkv, 12, None));
    total += t("out_proj (+bias)", || {
        cpu_kernels::linear(&x2, &w_out, Some(&b_out), false)
    });
    total += t("residual add", || &x2 + &x2);
    total += t("ln_2", || ln.forward(&x));
    total += t("c_fc (+bias, GELU)", || {
        cpu_kernels::linear(&x2, &w_fc, Some(&b_fc), true)
    });
    total += t("c_proj (+bias)", || {
        cpu_kernels::linear(&hid, &w_pr, Some(&b_pr), false)
    });
    total += t("residual add", || &x2 + &x2);
    println!(
        "{:<32} {:>7.1} ms  (x12 = {:.2} s)",
        "block",
        total * 1e3,
        total * 12.0
    );
    t("c_fc GEMM only", || {
        cpu_kernels::linear(&x2, &w_fc, None, false)
    });
    t("c_proj GEMM only", || {
        cpu_kernels::linear(&hid, &w_pr, None, false)
    });
}
