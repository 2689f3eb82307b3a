#!/usr/bin/env bash
# tic-train throughput on one GPU (see ../shared/gpu/README.md and docs/train.md).
#
#   bash bench/gpu/train_throughput.sh build   # here (no GPU): CUDA build + bundle into .gpu/
#   bash .gpu/run.sh                           # on the GPU machine (one run; prints a table)
#
# The GPU run times ViT-B-16 training steps (bf16 mixed precision) at batch 128 and 256 on a
# synthetic WebDataset pool generated there at 224 px (decode + augmentation are included and
# reported apart as data_wait_s), computes samples/s (median over steps after 5 warm-up steps)
# and model FLOP utilisation (6 x forward MACs per sample: ViT-B-16 image 17.58 GMAC + text
# 2.92 GMAC; H100 dense bf16 peak 989 TFLOP/s), and ends with a short real-data-layout run
# with the tiny scale as a smoke test. Baseline (PyTorch + OpenCLIP, amp bf16, same card):
# ../shared/reference/baselines.md (ViT-B-16 batch 256: 1,673 samples/s on an H100).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
mode=${1:-build}

if [ "$mode" = build ]; then
  cd "$here"
  cargo fetch
  [ -d .cuda-tk ] || bash ../shared/gpu/setup-cuda-tk.sh .cuda-tk
  # shellcheck disable=SC1091
  source ../shared/gpu/cuda-env.sh .cuda-tk
  # Its own target folder: the CUDA feature set would otherwise rebuild the CPU artifacts.
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/cuda}
  cargo build --release --features tic-train/cuda -p tic-train -p tic-shards -p tic-eval \
    -p tic-model --bins
  mkdir -p .gpu
  for b in tic-train tic-synth; do
    strip -o ".gpu/$b" "$CARGO_TARGET_DIR/release/$b"
    xz -9 -f -k ".gpu/$b" && rm ".gpu/$b"
  done
  cp ../shared/gpu/device-env.sh .gpu/
  cp "$0" .gpu/train_throughput.sh
  cat > .gpu/run.sh <<'RUN'
#!/usr/bin/env bash
set -uo pipefail
cd "$(dirname "$0")"
bash train_throughput.sh gpu
RUN
  echo "bundle ready in .gpu/ (carry it to the GPU machine and run: bash .gpu/run.sh)"
  exit 0
fi

# ---- on the GPU machine ----------------------------------------------------------------------
cd "$(dirname "$0")"
for b in tic-train tic-synth; do
  [ -x "$b" ] || python3 -c "import lzma,shutil; shutil.copyfileobj(lzma.open('$b.xz'), open('$b','wb'))"
  chmod +x "$b"
done
# shellcheck disable=SC1091
source ./device-env.sh
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
work=$(mktemp -d)
timeout 300 ./tic-synth --out "$work/synth" --num-samples 20000 --num-shards 16 --num-years 1 \
  --image-size 224 --quiet
steps=30
table="$OUT/train_throughput.tsv"
printf 'run\tbatch\tsamples_per_s\tstep_ms\tdata_wait_ms\tMFU\n' > "$table"
for batch in 128 256; do
  name="vitb16_b$batch"
  timeout 900 ./tic-train --scale tic_large --model ViT-B-16 --batch_size "$batch" \
    --train_num_samples $((batch * steps)) --num_checkpoints 1 --warmup 5 --precision bf16 \
    --workers 12 --dataset_resampled --data_dir "$work/synth/pool" --output_dir "$work/runs" \
    --exp_name "$name" --device cuda --quiet 2>&1 | tail -5 | tee "$OUT/$name.log" || true
  m="$work/runs/$name/metrics.jsonl"
  [ -f "$m" ] && cp "$m" "$OUT/$name.metrics.jsonl"
  python3 - "$m" "$batch" "$name" >> "$table" <<'PY' || printf '%s\t%s\tFAILED\n' "$name" "$batch" >> "$table"
import json, statistics, sys
path, batch, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = [json.loads(l) for l in open(path)][5:]
sps = statistics.median(r["samples_per_s"] for r in rows)
step = statistics.median(r["step_s"] for r in rows) * 1e3
wait = statistics.median(r["data_wait_s"] for r in rows) * 1e3
mfu = sps * 6 * (17.58e9 + 2.92e9) / 989e12
print(f"{name}\t{batch}\t{sps:.0f}\t{step:.1f}\t{wait:.1f}\t{mfu:.3f}")
PY
done
# Short run with the real data layout (resharded year folders are what the Makefile feeds).
timeout 300 ./tic-train --scale tiny --data_dir "$work/synth/pool" --output_dir "$work/runs" \
  --exp_name tiny_smoke --device cuda --quiet 2>&1 | tail -3 | tee "$OUT/tiny_smoke.log" || true
echo
column -t -s $'\t' "$table"
