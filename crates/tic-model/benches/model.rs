//! CPU throughput: ViT-B-16 image and text towers at batch 32 (f32, inference) and tokenizer
//! throughput. Compare with `bench/model_cpu_vs_torch.py` at the same thread count
//! (`RAYON_NUM_THREADS` / `torch.set_num_threads`).

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tic_model::{init, Clip, ClipConfig, Tokenizer};

fn vit_b_16() -> Clip {
    let cfg = ClipConfig::builtin("ViT-B-16").unwrap();
    let sd = init::init_state_dict(&cfg, 0, DType::F32, &Device::Cpu).unwrap();
    Clip::new(&cfg, VarBuilder::from_tensors(sd, DType::F32, &Device::Cpu)).unwrap()
}

fn captions(n: usize) -> Vec<String> {
    let words = [
        "a",
        "photo",
        "of",
        "the",
        "cat",
        "sitting",
        "on",
        "red",
        "sofa",
        "near",
        "window",
        "Café",
        "in",
        "Paris",
        "2023",
        "!",
        "sunset",
        "over",
        "mountains",
        "&amp;",
        "lake",
        "😀",
    ];
    (0..n)
        .map(|i| {
            (0..(5 + i % 20))
                .map(|j| words[(i * 7 + j * 13) % words.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let model = vit_b_16();
    let b = 32;
    let images = Tensor::randn(0f32, 1.0, (b, 3, 224, 224), &Device::Cpu).unwrap();
    let texts = captions(b);
    let ids = Tokenizer::shared()
        .tokenize_tensor(&texts, &Device::Cpu)
        .unwrap();

    let mut g = c.benchmark_group("vit_b_16_cpu_f32");
    g.sample_size(10);
    g.throughput(Throughput::Elements(b as u64));
    g.bench_function("image_tower_batch32", |bch| {
        bch.iter(|| model.encode_image(&images).unwrap())
    });
    g.bench_function("text_tower_batch32", |bch| {
        bch.iter(|| model.encode_text(&ids).unwrap())
    });
    g.finish();

    let many = captions(10_000);
    let mut g = c.benchmark_group("tokenizer");
    g.sample_size(10);
    g.throughput(Throughput::Elements(many.len() as u64));
    g.bench_function("tokenize_10k_captions", |bch| {
        bch.iter(|| Tokenizer::shared().tokenize_batch(&many))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
