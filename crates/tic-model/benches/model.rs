//! CPU throughput: ViT-B-16 image and text towers at batch 32 (f32, inference), tokenizer
//! throughput, and JPEG decoding (libjpeg-turbo's decoder, as PIL, vs the `image` crate's). Compare with `bench/model_cpu_vs_torch.py` at the same thread count
//! (`RAYON_NUM_THREADS` / `torch.set_num_threads`).

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tic_model::{init, preprocess, Clip, ClipConfig, Tokenizer};

/// A 256×256 photo-like JPEG (smooth gradients plus texture), quality 90, 4:2:0.
fn jpeg_256() -> Vec<u8> {
    let img = image::RgbImage::from_fn(256, 256, |x, y| {
        let t = ((x * 7 + y * 13) % 23) as u8;
        image::Rgb([x as u8 ^ t, y as u8, ((x + y) / 2) as u8 ^ (t << 2)])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&img)
        .unwrap();
    out
}

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
    // As tic-eval / tic-embed / tic-train do.
    tic_kernels::heap::reuse_freed_buffers();
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

    let jpeg = jpeg_256();
    let mut g = c.benchmark_group("jpeg_decode_256px");
    g.throughput(Throughput::Elements(1));
    g.bench_function("libjpeg_turbo_decoder", |bch| {
        bch.iter(|| preprocess::decode_rgb(&jpeg).unwrap())
    });
    g.bench_function("image_crate_zune_jpeg", |bch| {
        bch.iter(|| image::load_from_memory(&jpeg).unwrap().to_rgb8())
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
