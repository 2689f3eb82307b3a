#!/usr/bin/env python3
"""PyTorch OpenCLIP baseline for `cargo bench -p tic-model`: ViT-B-16 image and text towers at
batch 32 on CPU (f32, inference, no_grad) and tokenizer throughput, at a given thread count.

    python bench/model_cpu_vs_torch.py --threads 2
    RAYON_NUM_THREADS=2 cargo bench -p tic-model
"""
import argparse
import time

import torch
import open_clip


def timeit(fn, warmup=1, iters=5):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    ts.sort()
    return ts[len(ts) // 2]


def captions(n):
    words = ["a", "photo", "of", "the", "cat", "sitting", "on", "red", "sofa", "near", "window",
             "Café", "in", "Paris", "2023", "!", "sunset", "over", "mountains", "&amp;", "lake", "😀"]
    return [" ".join(words[(i * 7 + j * 13) % len(words)] for j in range(5 + i % 20)) for i in range(n)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-16", pretrained=None).eval()
    tok = open_clip.get_tokenizer("ViT-B-16")
    b = 32
    images = torch.randn(b, 3, 224, 224)
    ids = tok(captions(b))
    with torch.no_grad():
        ti = timeit(lambda: model.encode_image(images), iters=a.iters)
        tt = timeit(lambda: model.encode_text(ids), iters=a.iters)
    many = captions(10_000)
    tok(many)  # warm the BPE cache, as the Rust bench does across iterations
    tk = timeit(lambda: tok(many), warmup=0, iters=3)
    print(f"torch {torch.__version__}, threads {a.threads}")
    print(f"image_tower_batch32: {ti:.3f} s/iter  ({b / ti:.1f} images/s)")
    print(f"text_tower_batch32:  {tt:.3f} s/iter  ({b / tt:.1f} texts/s)")
    print(f"tokenize_10k_captions: {tk:.3f} s  ({len(many) / tk:.0f} captions/s)")


if __name__ == "__main__":
    main()
