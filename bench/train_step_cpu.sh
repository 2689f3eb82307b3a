#!/usr/bin/env bash
# Training-step speed and peak memory on the CPU: tic-train against PyTorch + OpenCLIP, the same
# model, batch and threads, with and without gradient checkpointing, one run after the other.
# Prints a Markdown table with ratios (docs/benchmarks.md, "Training memory and speed on CPU").
# tic-train is measured twice: the binary on a synthetic pool (what users run: data loading on the
# same cores, text tower up to the longest caption) and tic-train's step on the very inputs PyTorch
# gets (random 224-px images and random 77-token texts, no loader: the `step_memory` example);
# the ratios compare the latter, like for like.
#
#   bash bench/train_step_cpu.sh                      # ViT-B-32 @ 32 and ViT-B-16 @ 16
#   CASES="ViT-B-32:32" STEPS=4 bash bench/train_step_cpu.sh
#
# Settings (environment): CASES ("ViT-B-32:32 ViT-B-16:16"), STEPS (timed steps after one
# warm-up, 4), THREADS (2), TORCH_PYTHON (a python with torch and open_clip_torch; default
# python3; without them the PyTorch columns say so), FUSED (TIC_FUSED_OPS for tic-train: auto),
# CLIP (1: clip the gradients' global norm to 1 in all three, `--grad_clip_norm 1` /
# `clip_grad_norm_`; 0, the default of tic-train, OpenCLIP and DataComp: no clipping),
# OUT (bench/out/train_step). tic-train trains on a synthetic 224-px pool (2 loader workers),
# PyTorch on random tensors (no data loading). Speed: median s/step after the first step
# (tic-train: metrics.jsonl's step_s). Memory: whole-process peak RSS (/usr/bin/time -f %M).
. "$(dirname "$0")/lib.sh"
CASES=${CASES:-"ViT-B-32:32 ViT-B-16:16"}
STEPS=${STEPS:-4}
THREADS=${THREADS:-2}
TORCH_PYTHON=${TORCH_PYTHON:-python3}
OUT=${OUT:-bench/out/train_step}
CLIP=${CLIP:-0}
export TIC_FUSED_OPS=${FUSED:-auto}
cargo build -q --release -p tic-train -p tic-shards --bins
cargo build -q --release -p tic-train --example step_memory
bin=${CARGO_TARGET_DIR:-target}/release
mkdir -p "$OUT"

max_batch=0
for c in $CASES; do b=${c#*:}; (( b > max_batch )) && max_batch=$b; done
samples=$(( max_batch * (STEPS + 1) + 8 ))
if [ ! -f "$OUT/pool/.samples-$samples" ]; then
  rm -rf "$OUT/pool"
  "$bin/tic-synth" --out "$OUT/pool" --num-samples "$samples" --num-shards 2 --num-years 1 \
    --image-size 224 >/dev/null
  touch "$OUT/pool/.samples-$samples"
fi

median_example_step() { # step_memory output -> median whole-step seconds after the first step
  python3 - "$1" <<'PY'
import re, statistics, sys
s = [float(m.group(1)) for m in re.finditer(r"\| step \d+: AdamW \|[^|]*\|[^|]*\| ([0-9.]+) \|", open(sys.argv[1]).read())][1:]
print(f"{statistics.median(s):.2f}")
PY
}

peak_mib() { awk '/KB/ {printf "%d", $1 / 1024}' "$1"; }

have_torch=0
"$TORCH_PYTHON" -c 'import torch, open_clip' 2>/dev/null && have_torch=1

rows=()
for c in $CASES; do
  model=${c%:*}; batch=${c#*:}
  for ckpt in 0 1; do
    run="$OUT/tic-$model-$batch-$ckpt"
    rm -rf "$run"
    flag=(); [ "$ckpt" = 1 ] && flag=(--grad_checkpointing)
    [ "$CLIP" = 1 ] && flag+=(--grad_clip_norm 1)
    RAYON_NUM_THREADS=$THREADS /usr/bin/time -f "%M KB" -o "$OUT/tic-$model-$batch-$ckpt.mem" \
      "$bin/tic-train" --scale tiny --model "$model" --data_dir "$OUT/pool/pool" \
      --batch_size "$batch" --train_num_samples $(( batch * (STEPS + 1) )) --num_checkpoints 1 \
      --workers 2 --device cpu -q --output_dir "$run" --exp_name r "${flag[@]}" >/dev/null
    tic_s=$(median_step "$run/r/metrics.jsonl" 1 2)
    tic_mem=$(peak_mib "$OUT/tic-$model-$batch-$ckpt.mem")
    same=(); [ "$ckpt" = 1 ] && same=(ckpt)
    [ "$CLIP" = 1 ] && same+=(clip)
    RAYON_NUM_THREADS=$THREADS /usr/bin/time -f "%M KB" -o "$OUT/same-$model-$batch-$ckpt.mem" \
      "$bin/examples/step_memory" "$model" "$batch" "${same[@]}" $(( STEPS + 1 )) > "$OUT/same-$model-$batch-$ckpt.txt"
    same_s=$(median_example_step "$OUT/same-$model-$batch-$ckpt.txt")
    same_mem=$(peak_mib "$OUT/same-$model-$batch-$ckpt.mem")
    if [ "$have_torch" = 1 ]; then
      line=$(OMP_NUM_THREADS=$THREADS /usr/bin/time -f "%M KB" -o "$OUT/torch-$model-$batch-$ckpt.mem" \
        "$TORCH_PYTHON" bench/train_step_cpu_torch.py "$model" "$batch" "$ckpt" "$STEPS" "$CLIP")
      torch_s=$(cut -f5 <<<"$line")
      torch_mem=$(peak_mib "$OUT/torch-$model-$batch-$ckpt.mem")
      speed=$(python3 -c "print(f'{$torch_s / $same_s:.2f}×')")
      mem=$(python3 -c "print(f'{$same_mem / $torch_mem:.2f}×')")
    else
      torch_s="n/a"; torch_mem="n/a"; speed="—"; mem="—"
    fi
    rows+=("| $model | $batch | $([ "$ckpt" = 1 ] && echo on || echo off) | $tic_s | $same_s | $torch_s | $speed | $tic_mem | $same_mem | $torch_mem | $mem |")
  done
done

echo
echo "TIC_FUSED_OPS=$TIC_FUSED_OPS, $THREADS threads, $STEPS timed steps, gradient clipping $([ "$CLIP" = 1 ] && echo 'to norm 1' || echo off), $(date -u +%F)"
[ "$have_torch" = 1 ] || echo "PyTorch columns: n/a ($TORCH_PYTHON has no torch + open_clip; pip install torch open_clip_torch)"
echo
echo "| model | batch | grad ckpt | tic-train s/step (pool) | tic s/step (same inputs) | PyTorch s/step | speed (PyTorch s / tic s) | tic-train peak MiB (pool) | tic peak MiB (same inputs) | PyTorch peak MiB | memory (tic / PyTorch) |"
echo "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
