"""PyTorch + OpenCLIP training-step baseline on the GPU, for the ratio column of the GPU check.

Random-init OpenCLIP model, random images and token ids on the GPU (no data loading), a full
step: both towers forward under autocast(bf16), ClipLoss, backward, AdamW with OpenCLIP's
parameter groups. 3 warm-up steps, then the median of STEPS timed steps. Prints one TSV row per
(batch, checkpointing): model, batch, grad_checkpointing, samples/s, ms/step, peak GiB.

    python3 torch_baseline.py ViT-B-16 "128 256" 10 > torch.tsv
"""

import statistics
import sys
import time

import open_clip
import torch
import torch.nn.functional as F


def step_time(model, opt, batch, ckpt):
    model.set_grad_checkpointing(ckpt)
    dev = "cuda"
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    images = torch.randn(batch, 3, size, size, device=dev)
    text = torch.randint(1, 49000, (batch, 77), device=dev)
    labels = torch.arange(batch, device=dev)
    times = []
    torch.cuda.reset_peak_memory_stats()
    for i in range(3 + int(sys.argv[3])):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            img, txt, scale = model(images, text)
            logits = scale * img @ txt.T
            loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        torch.cuda.synchronize()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return statistics.median(times), torch.cuda.max_memory_allocated() / 2**30


def main():
    name, batches = sys.argv[1], [int(b) for b in sys.argv[2].split()]
    model = open_clip.create_model(name).cuda().train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "ln" not in n and "bias" not in n and "logit_scale" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "ln" not in n and "bias" not in n and "logit_scale" not in n)]
    opt = torch.optim.AdamW([{"params": rest, "weight_decay": 0.0}, {"params": decay, "weight_decay": 0.2}], lr=5e-4, betas=(0.9, 0.98), eps=1e-6)
    print("model\tbatch\tgrad_checkpointing\tsamples_per_s\tstep_ms\tpeak_GiB")
    for batch in batches:
        for ckpt in (False, True):
            try:
                t, peak = step_time(model, opt, batch, ckpt)
                print(f"{name}\t{batch}\t{ckpt}\t{batch / t:.0f}\t{t * 1e3:.1f}\t{peak:.1f}", flush=True)
            except torch.cuda.OutOfMemoryError:
                print(f"{name}\t{batch}\t{ckpt}\tOOM\t-\t-", flush=True)
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
