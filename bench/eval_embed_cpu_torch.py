#!/usr/bin/env python3
"""PyTorch side of bench/eval_embed_cpu.sh: DataComp's retrieval evaluation (CLIP_benchmark
1.4.0 `build_dataset("wds/...")` + `zeroshot_retrieval.evaluate`, OpenCLIP 2.24.0 model and
eval transform) on a WebDataset retrieval set, timing the image and text towers separately.
"""
import argparse
import time

import torch
import open_clip
from safetensors.torch import load_file
from clip_benchmark.datasets.builder import build_dataset
from clip_benchmark.metrics import zeroshot_retrieval as zsr


class Timed:
    """Wraps a model and accumulates the time spent in encode_image / encode_text."""

    def __init__(self, model):
        self.model = model
        self.t_img = 0.0
        self.t_txt = 0.0
        self.n_img = 0
        self.n_txt = 0

    def encode_image(self, x):
        t = time.perf_counter()
        out = self.model.encode_image(x)
        self.t_img += time.perf_counter() - t
        self.n_img += x.shape[0]
        return out

    def encode_text(self, x):
        t = time.perf_counter()
        out = self.model.encode_text(x)
        self.t_txt += time.perf_counter() - t
        self.n_txt += x.shape[0]
        return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--set", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    model, _, transform = open_clip.create_model_and_transforms("ViT-B-16")
    model.load_state_dict(load_file(a.weights))
    model.eval()
    tok = open_clip.get_tokenizer("ViT-B-16")
    ds = build_dataset(dataset_name="wds/bench", root=a.set, transform=transform, split="test",
                       download=False, task="zeroshot_retrieval")
    # DataComp eval_utils/retr_eval.py: batched WebDataset, batch_size=None, num_workers.
    loader = torch.utils.data.DataLoader(ds.batched(a.batch_size), batch_size=None,
                                         shuffle=False, num_workers=a.threads)
    timed = Timed(model)
    t0 = time.perf_counter()
    with torch.no_grad():
        m = zsr.evaluate(timed, loader, tok, "cpu", amp=False, recall_k_list=[1, 5, 10])
    total = time.perf_counter() - t0
    print(f"images: {timed.n_img} in {timed.t_img:.1f} s of image tower "
          f"({timed.n_img / timed.t_img:.2f} images/s tower only)")
    print(f"texts:  {timed.n_txt} in {timed.t_txt:.1f} s of text tower "
          f"({timed.n_txt / timed.t_txt:.2f} texts/s tower only)")
    print(f"total wall {total:.1f} s incl. data loading and metrics "
          f"({timed.n_img / total:.2f} images/s end to end); image_retrieval_recall@1 "
          f"{m['image_retrieval_recall@1']:.4f}")


if __name__ == "__main__":
    main()
