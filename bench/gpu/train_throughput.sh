#!/usr/bin/env bash
# GPU checks of tic-rs in one run (see ../shared/gpu/README.md, docs/train.md, docs/model.md).
#
#   bash bench/gpu/train_throughput.sh build     # here (no GPU): CUDA build + bundle into .gpu/
#   bash bench/gpu/train_throughput.sh dry-run   # here: the same GPU-side script on CPU builds,
#                                                # tiny sizes (checks the script, not the GPU)
#   bash .gpu/run.sh                             # on the GPU machine (one run; prints a table)
#
# The GPU run
# 1. times ViT-B-16 training steps (bf16 mixed precision) at batch 128 and 256 on a synthetic
#    WebDataset pool generated there at 224 px (decode + augmentation are included and reported
#    apart as data_wait_s): samples/s (median over steps after 5 warm-up steps) and model FLOP
#    utilisation (6 x forward MACs per sample: ViT-B-16 image 17.58 GMAC + text 2.92 GMAC; H100
#    dense bf16 peak 989 TFLOP/s). Baseline (PyTorch + OpenCLIP, amp bf16, same card):
#    ../shared/reference/baselines.md (ViT-B-16 batch 256: 1,673 samples/s on an H100);
# 2. checks the CUDA forward pass against the CPU one: tic-embed with the weights the first
#    training run saved, on 64 synthetic images and their captions, on CPU f32, CUDA f32 and
#    CUDA bf16 (max |difference| and minimum cosine of the L2-normalised features vs CPU), and
#    times CUDA embedding (images/s, f32 and bf16, decode included);
# 3. ends with a short tiny-scale training run as a smoke test.
#
# GPU-side settings (environment): DEVICE (cuda), MODEL (ViT-B-16), BATCHES ("128 256"),
# STEPS (30), PRECISION (bf16), POOL (20000 samples), IMAGE_SIZE (224), WORKERS (12),
# EMBED_N (1024 images for the embedding timing), PY (python3; with numpy, as the GPU machine's).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
mode=${1:-build}
bins="tic-train tic-synth tic-embed"

bundle() { # bundle DIR BINDIR COMPRESS
  mkdir -p "$1"
  for b in $bins; do
    if [ "$3" = xz ]; then
      strip -o "$1/$b" "$2/$b"
      xz -9 -f -k "$1/$b" && rm "$1/$b"
    else
      cp "$2/$b" "$1/$b"
    fi
  done
  cp "$here/bench/gpu/train_throughput.sh" "$1/train_throughput.sh"
  printf '#!/usr/bin/env bash\nset -uo pipefail\ncd "$(dirname "$0")"\nbash train_throughput.sh gpu\n' \
    > "$1/run.sh"
}

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
  bundle .gpu "$CARGO_TARGET_DIR/release" xz
  cp ../shared/gpu/device-env.sh .gpu/
  echo "bundle ready in .gpu/ (carry it to the GPU machine and run: bash .gpu/run.sh)"
  exit 0
fi

if [ "$mode" = dry-run ]; then
  cd "$here"
  cargo build --release -q -p tic-train -p tic-shards -p tic-model --bins
  dir=$(mktemp -d)
  bundle "$dir" target/release copy
  DEVICE=cpu MODEL=tiny-test BATCHES="16 32" STEPS=8 PRECISION=fp32 POOL=256 IMAGE_SIZE=64 \
    WORKERS=2 EMBED_N=64 OUT="${OUT:-$dir/out}" bash "$dir/run.sh"
  exit 0
fi

# ---- on the GPU machine (or the dry run) -----------------------------------------------------
cd "$(dirname "$0")"
DEVICE=${DEVICE:-cuda}
MODEL=${MODEL:-ViT-B-16}
BATCHES=${BATCHES:-128 256}
STEPS=${STEPS:-30}
PRECISION=${PRECISION:-bf16}
POOL=${POOL:-20000}
IMAGE_SIZE=${IMAGE_SIZE:-224}
WORKERS=${WORKERS:-12}
EMBED_N=${EMBED_N:-1024}
PY=${PY:-python3}
for b in $bins; do
  [ -x "$b" ] || "$PY" -c "import lzma,shutil; shutil.copyfileobj(lzma.open('$b.xz'), open('$b','wb'))"
  chmod +x "$b"
done
if [ "$DEVICE" != cpu ]; then
  # shellcheck disable=SC1091
  source ./device-env.sh
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
fi
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
work=$(mktemp -d)
timeout 300 ./tic-synth --out "$work/synth" --num-samples "$POOL" --num-shards 16 --num-years 1 \
  --image-size "$IMAGE_SIZE" --quiet
table="$OUT/train_throughput.tsv"
printf 'run\tbatch\tsamples_per_s\tstep_ms\tdata_wait_ms\tMFU\n' > "$table"
first_run=""
for batch in $BATCHES; do
  name="train_${MODEL}_b$batch"
  first_run=${first_run:-$name}
  timeout 900 ./tic-train --scale tic_large --model "$MODEL" --batch_size "$batch" \
    --train_num_samples $((batch * STEPS)) --num_checkpoints 1 --warmup 5 \
    --precision "$PRECISION" --workers "$WORKERS" --dataset_resampled \
    --data_dir "$work/synth/pool" --output_dir "$work/runs" --exp_name "$name" \
    --device "$DEVICE" --quiet 2>&1 | tail -5 | tee "$OUT/$name.log" || true
  m="$work/runs/$name/metrics.jsonl"
  [ -f "$m" ] && cp "$m" "$OUT/$name.metrics.jsonl"
  "$PY" - "$m" "$batch" "$name" "$MODEL" >> "$table" <<'PY' || printf '%s\t%s\tFAILED\n' "$name" "$batch" >> "$table"
import json, statistics, sys
path, batch, name, model = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
rows = [json.loads(l) for l in open(path)][5:]
sps = statistics.median(r["samples_per_s"] for r in rows)
step = statistics.median(r["step_s"] for r in rows) * 1e3
wait = statistics.median(r["data_wait_s"] for r in rows) * 1e3
mfu = f"{sps * 6 * (17.58e9 + 2.92e9) / 989e12:.3f}" if model == "ViT-B-16" else "-"
print(f"{name}\t{batch}\t{sps:.0f}\t{step:.1f}\t{wait:.1f}\t{mfu}")
PY
done

# CUDA forward pass vs CPU, with the weights the first run saved.
weights="$work/runs/$first_run/checkpoints/epoch_latest.safetensors"
etable="$OUT/embed.tsv"
printf 'embed\tdevice\tdtype\trows\twall_s\timages_per_s\tmax_abs_diff_vs_cpu\tmin_cosine_vs_cpu\n' > "$etable"
if [ -f "$weights" ]; then
  timeout 120 ./tic-synth --out "$work/small" --num-samples 64 --num-shards 1 --num-years 1 \
    --image-size "$IMAGE_SIZE" --seed 7 --quiet
  small=$(ls "$work"/small/pool/*.tar | head -1)
  "$PY" - "$small" "$work/captions.txt" <<'PY'
import sys, tarfile
with tarfile.open(sys.argv[1]) as t, open(sys.argv[2], "w") as out:
    for m in sorted(t.getmembers(), key=lambda m: m.name):
        if m.name.endswith(".txt"):
            out.write(t.extractfile(m).read().decode().replace("\n", " ") + "\n")
PY
  embed() { # embed NAME DEVICE DTYPE TIC-EMBED-ARGS...  (wall time includes loading the model)
    local name=$1 dev=$2 dt=$3
    shift 3
    local t0
    t0=$(date +%s.%N)
    timeout 600 ./tic-embed --model "$MODEL" --weights "$weights" "$@" \
      --output "$work/embed_$name" --device "$dev" --dtype "$dt" > "$OUT/embed_$name.log" 2>&1 \
      || echo "tic-embed $name failed: $(tail -2 "$OUT/embed_$name.log")"
    echo "$t0 $(date +%s.%N)" > "$work/embed_$name.time"
  }
  embed cpu cpu f32 --images "$small" --texts "$work/captions.txt"
  embed dev_f32 "$DEVICE" f32 --images "$small" --texts "$work/captions.txt"
  embed dev_bf16 "$DEVICE" bf16 --images "$small" --texts "$work/captions.txt"
  # Throughput on at least EMBED_N images: the first shards of the training pool.
  n_shards=$(( (EMBED_N * 16 + POOL - 1) / POOL ))
  mapfile -t shards < <(ls "$work"/synth/pool/*.tar | head -"$n_shards")
  embed speed_f32 "$DEVICE" f32 --images "${shards[@]}"
  embed speed_bf16 "$DEVICE" bf16 --images "${shards[@]}"
  "$PY" - "$work" "$DEVICE" >> "$etable" <<'PY' || echo "embedding comparison failed"
import sys, numpy as np
work, dev = sys.argv[1], sys.argv[2]
def load(name, kind):
    try:
        return np.load(f"{work}/embed_{name}/{kind}_features.npy")
    except OSError:
        return None
def secs(name):
    t0, t1 = map(float, open(f"{work}/embed_{name}.time").read().split())
    return t1 - t0
for name, device, dtype in [("cpu", "cpu", "f32"), ("dev_f32", dev, "f32"), ("dev_bf16", dev, "bf16")]:
    for kind in ("image", "text"):
        ref, got = load("cpu", kind), load(name, kind)
        if got is None or ref is None:
            print(f"{kind}\t{device}\t{dtype}\t-\t-\t-\tFAILED\tFAILED")
            continue
        diff = float(np.abs(got - ref).max())
        cos = float((got * ref).sum(1).min())
        print(f"{kind}\t{device}\t{dtype}\t{len(got)}\t{secs(name):.2f}\t-\t{diff:.2e}\t{cos:.6f}")
for name, dtype in [("speed_f32", "f32"), ("speed_bf16", "bf16")]:
    got = load(name, "image")
    n = 0 if got is None else len(got)
    s = secs(name)
    print(f"image speed\t{dev}\t{dtype}\t{n}\t{s:.2f}\t{n / s:.1f}\t-\t-")
PY
else
  echo "no weights at $weights: embedding checks skipped" | tee -a "$OUT/embed.log"
fi

# Short run with the real data layout (resharded year folders are what the Makefile feeds).
timeout 300 ./tic-train --scale tiny --data_dir "$work/synth/pool" --output_dir "$work/runs" \
  --exp_name tiny_smoke --device "$DEVICE" --quiet 2>&1 | tail -3 | tee "$OUT/tiny_smoke.log" || true
echo
column -t -s $'\t' "$etable"
echo
column -t -s $'\t' "$table"
