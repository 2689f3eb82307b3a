"""PyTorch + OpenCLIP training step on the CPU, the reference for bench/train_step_cpu.sh.

Random-init OpenCLIP model (fp32), random 224-px images and token ids (no data loading), a full
step: both towers forward, ClipLoss (mean of the two cross-entropies), backward, AdamW with
OpenCLIP's two parameter groups (lr 5e-4, wd 0.2, betas 0.9/0.98, eps 1e-6); with CLIP=1 the
gradients' global norm is clipped to 1 first (OpenCLIP's --grad-clip-norm; off by default, as in
OpenCLIP and DataComp). One warm-up step, then the median of STEPS timed steps. Prints one TSV
line: model, batch, grad_checkpointing, samples/s, s/step. The caller measures peak RSS
(/usr/bin/time).

    python3 train_step_cpu_torch.py ViT-B-32 32 0 5 [CLIP]
"""

import statistics
import sys
import time

import open_clip
import torch
import torch.nn.functional as F


def main():
    name, batch, ckpt, steps = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", int(sys.argv[4])
    clip = len(sys.argv) > 5 and sys.argv[5] == "1"
    torch.manual_seed(0)
    model = open_clip.create_model(name, pretrained=None)
    model.train()
    model.set_grad_checkpointing(ckpt)
    exclude = lambda n, p: p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n or "logit_scale" in n
    named = list(model.named_parameters())
    groups = [
        {"params": [p for n, p in named if exclude(n, p)], "weight_decay": 0.0},
        {"params": [p for n, p in named if not exclude(n, p)], "weight_decay": 0.2},
    ]
    opt = torch.optim.AdamW(groups, lr=5e-4, betas=(0.9, 0.98), eps=1e-6)
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    images = torch.randn(batch, 3, size, size)
    text = torch.randint(1, 49000, (batch, 77))
    labels = torch.arange(batch)
    times = []
    for _ in range(1 + steps):
        t0 = time.perf_counter()
        img, txt, scale = model(images, text)
        logits = scale * img @ txt.T
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        times.append(time.perf_counter() - t0)
    s = statistics.median(times[1:])
    print(f"{name}\t{batch}\t{int(ckpt)}\t{batch / s:.3f}\t{s:.3f}")


if __name__ == "__main__":
    main()
