#!/usr/bin/env bash
# Per-step time of data-parallel tic-train on CPU: the same global batch on 1 process and on
# W ranks (mpirun, MPICH), one machine. Prints a Markdown table (docs/distributed.md).
#
#   bash bench/dist_step_cpu.sh                  # tiny (batch 32) and ViT-B-32 (batch 32), W = 2
#   MODELS="tiny" STEPS=60 bash bench/dist_step_cpu.sh
#
# Settings (environment): MODELS ("tiny ViT-B-32"), WORLD (2), BATCH (32), STEPS (tiny: 60,
# ViT: 8), OUT (bench/out/dist). Each run uses all cores: 1 process with RAYON_NUM_THREADS=cores,
# W ranks with cores/W threads each (tic-train's default under mpirun). The step time is the
# median of metrics.jsonl's step_s after the first 3 steps (warm-up).
. "$(dirname "$0")/lib.sh"
MODELS=${MODELS:-"tiny ViT-B-32"}
WORLD=${WORLD:-2}
BATCH=${BATCH:-32}
OUT=${OUT:-bench/out/dist}
cores=$(nproc)
cargo build -q --release -p tic-train -p tic-shards --bins --features tic-train/mpi
bin=${CARGO_TARGET_DIR:-target}/release
mkdir -p "$OUT"

echo "| model | image | global batch | steps | 1 process (s/step) | $WORLD ranks (s/step) | ratio |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for model in $MODELS; do
  if [ "$model" = tiny ]; then size=32; steps=${STEPS:-60}; scale=(--scale tiny);
  else size=224; steps=${STEPS:-8}; scale=(--scale tiny --model "$model"); fi
  pool=$OUT/pool$size
  [ -f "$pool/synth.json" ] || "$bin/tic-synth" --out "$pool" --num-samples $((BATCH * steps + 64)) \
    --num-shards 4 --num-years 1 --image-size $size --quiet >/dev/null
  common=("${scale[@]}" --data_dir "$pool/pool" --batch_size "$BATCH" --train_num_samples $((BATCH * steps))
    --num_checkpoints 1 --workers 1 --device cpu -q --output_dir "$OUT/runs")
  rm -rf "$OUT/runs/$model-w1" "$OUT/runs/$model-w$WORLD"
  RAYON_NUM_THREADS=$cores "$bin/tic-train" "${common[@]}" --exp_name "$model-w1"
  mpirun -np "$WORLD" "$bin/tic-train" "${common[@]}" --exp_name "$model-w$WORLD" 2>/dev/null
  a=$(median_step "$OUT/runs/$model-w1/metrics.jsonl" 3 4)
  b=$(median_step "$OUT/runs/$model-w$WORLD/metrics.jsonl" 3 4)
  echo "| $model | $size | $BATCH | $steps | $a | $b | $(python3 -c "print(f'{$b/$a:.2f}x')") |"
done
