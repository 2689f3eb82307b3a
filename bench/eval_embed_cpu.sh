#!/usr/bin/env bash
# Embedding throughput of `tic-eval` against PyTorch OpenCLIP + CLIP_benchmark (as DataComp's
# evaluate.py runs it) on the same retrieval set, the same random ViT-B-16 weights and the same
# number of threads, on CPU.
#
#   bash bench/eval_embed_cpu.sh                     # N=128 images, THREADS=2, BS=64
#   N=256 THREADS=2 PY=/work/venvs/py/bin/python bash bench/eval_embed_cpu.sh
#
# Needs a Python with torch, open_clip_torch==2.24.0, clip_benchmark==1.4.0, webdataset,
# safetensors. Prints images/s and texts/s for both; see docs/benchmarks.md.
. "$(dirname "$0")/lib.sh"
N=${N:-128}
THREADS=${THREADS:-2}
BS=${BS:-64}
IMG=${IMG:-256}
PY=${PY:-/work/venvs/py/bin/python}
OUT=${BENCH_DIR:-bench/out/eval-embed}
# BIN=DIR SKIP_BUILD=1 uses binaries built otherwise (e.g. a dev build with opt-level 3).
BIN=${BIN:-target/release}
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release -q -p tic-shards --bins
  cargo build --release -q -p tic-eval --bins
fi
rm -rf "$OUT" && mkdir -p "$OUT"
$BIN/tic-synth --out "$OUT/syn" --num-samples "$N" --num-shards 1 --image-size "$IMG" \
  --bench-subset 1.0 --quiet
SET=$OUT/data/wds_retrieval-bench_test
$BIN/tic-reshard -i "$OUT/syn/pool" -o "$SET/test" -s "$OUT/syn/bench_subset.npy" \
  --shard-size 10000 -q
$BIN/tic-wds-convert "$SET/test" retrieval
mv "$SET/test/dataset_type.txt" "$SET/"
printf 'retrieval/bench:\n  name: bench\n  main_metric: mean_recall@1\n' > "$OUT/tasklist.yml"
# Random ViT-B-16 weights, written by OpenCLIP itself.
"$PY" - "$OUT/vit_b_16.safetensors" <<'PYEOF'
import sys, torch, open_clip
from safetensors.torch import save_file
torch.manual_seed(0)
m = open_clip.create_model("ViT-B-16")
save_file({k: v.contiguous() for k, v in m.state_dict().items()}, sys.argv[1])
PYEOF
cat "$SET"/test/*.tar > /dev/null  # warm page cache

echo "== tic-eval (RAYON_NUM_THREADS=$THREADS, --num_workers $THREADS, --batch_size $BS)"
RAYON_NUM_THREADS=$THREADS $BIN/tic-eval --use_model "ViT-B-16 $OUT/vit_b_16.safetensors" \
  --data_dir "$OUT/data" --tasklist "$OUT/tasklist.yml" --output_dir "$OUT/rust" \
  --batch_size "$BS" --num_workers "$THREADS" -q | tee "$OUT/rust.md"

echo "== PyTorch + CLIP_benchmark (torch threads $THREADS, DataLoader workers $THREADS)"
"$PY" bench/eval_embed_cpu_torch.py --set "$SET" --weights "$OUT/vit_b_16.safetensors" \
  --threads "$THREADS" --batch-size "$BS" | tee "$OUT/torch.txt"
