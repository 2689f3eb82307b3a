use candle_core::{Device, Tensor, D};
use std::time::Instant;
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
    let _ = D::Minus1;
}
