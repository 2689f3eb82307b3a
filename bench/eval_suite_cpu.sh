#!/usr/bin/env bash
# Images/s per task kind of DataComp's static suite on CPU: tic-eval against DataComp's own
# evaluate.py (datacomp 7fdb5c6, run unchanged) on the same synthetic sets, the same random
# ViT-B-32 weights (written by OpenCLIP), the same threads and batch size, one after the other,
# RUNS times each, alternating. Also a free end-to-end parity check: every numeric metric of
# both eval_results.jsonl files is compared.
#
#   PY=/tmp/fairface-venv/bin/python DATACOMP=/tmp/datacomp bash bench/eval_suite_cpu.sh
#   N=48 RUNS=2 THREADS=2 BS=64 ... bash bench/eval_suite_cpu.sh
#
# Kinds: plain classification (cifar10), WILDS with npy metadata (wilds/iwildcam), Dollar Street
# (top-5 by income group), FairFace (multi-label), Flickr retrieval and WinoGAViL from an
# hf_cache written by datasets 2.8. See bench/eval_suite_cpu.py and docs/benchmarks.md.
# PY needs DataComp's evaluation packages: open_clip_torch==2.16.1, clip_benchmark==1.4.0,
# webdataset==0.2.31, datasets==2.8.0 (with fsspec==2022.11.0, pyarrow<15), wilds==2.0.0,
# scikit-learn, pandas, cloudpathlib, torch. DATACOMP: a checkout of datacomp 7fdb5c6, e.g.
#   git -C DATACOMP_GIT_DIR archive 7fdb5c6 | tar x -C /tmp/datacomp
# DataComp's evaluators use 4 DataLoader workers (hard-coded), so tic-eval gets --num_workers 4.
. "$(dirname "$0")/lib.sh"
N=${N:-48}
RUNS=${RUNS:-2}
THREADS=${THREADS:-2}
BS=${BS:-64}
PY=${PY:-/tmp/fairface-venv/bin/python}
DATACOMP=${DATACOMP:?set DATACOMP to a checkout of datacomp 7fdb5c6}
OUT=${BENCH_DIR:-bench/out/eval-suite}
# BIN=DIR SKIP_BUILD=1 uses binaries built otherwise; DEVICE=cuda runs only tic-eval (GPU row).
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release}
DEVICE=${DEVICE:-cpu}
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release -q -p tic-eval --bins
fi
if [ "${SKIP_DATA:-0}" != 1 ]; then
  rm -rf "$OUT" && mkdir -p "$OUT"
  "$PY" bench/eval_suite_cpu.py data "$OUT" --n "$N"
fi
OUT=$(cd "$OUT" && pwd)
cat "$OUT"/data/*/test/*.tar "$OUT"/data/hf_cache/*/*/*/*/*.arrow > /dev/null  # warm page cache

tic_run() {  # tic_run RUN
  rm -rf "${OUT:?}/$1" && mkdir -p "$OUT/$1"
  echo "== $1: tic-eval (RAYON_NUM_THREADS=$THREADS, --num_workers 4, --batch_size $BS, $DEVICE); $(uptime)"
  RAYON_NUM_THREADS=$THREADS $BIN/tic-eval --use_model "ViT-B-32 $OUT/vit_b_32.pt" \
    --data_dir "$OUT/data" --tasklist "$OUT/tasklist.yml" --output_dir "$OUT/$1" \
    --batch_size "$BS" --num_workers 4 --device "$DEVICE" --json -q > "$OUT/$1/summary.jsonl"
}

datacomp_run() {  # datacomp_run RUN: evaluate.py reads tasklist.yml beside itself
  rm -rf "${OUT:?}/$1" "$OUT/datacomp" && mkdir -p "$OUT/datacomp"
  cp -r "$DATACOMP/evaluate.py" "$DATACOMP/eval_utils" "$DATACOMP/scale_configs.py" "$OUT/datacomp/"
  cp "$OUT/tasklist.yml" "$OUT/datacomp/"
  echo "== $1: DataComp evaluate.py (torch threads $THREADS, 4 DataLoader workers, --batch_size $BS); $(uptime)"
  "$PY" bench/eval_suite_cpu.py datacomp "$OUT" "$OUT/datacomp" "$1" --threads "$THREADS" \
    --batch-size "$BS" > "$OUT/$1.log" 2>&1 || { tail -30 "$OUT/$1.log"; exit 1; }
}

runs=()
for i in $(seq 1 "$RUNS"); do
  tic_run "tic$i"
  runs+=("tic$i")
  if [ "$DEVICE" = cpu ]; then
    datacomp_run "datacomp$i"
    runs+=("datacomp$i")
  fi
done
echo "== done; $(uptime)"
if [ "$DEVICE" = cpu ]; then
  "$PY" bench/eval_suite_cpu.py report "$OUT" "${runs[@]}" | tee "$OUT/report.md"
else
  cat "$OUT"/tic*/summary.jsonl
fi
