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
# 3. runs the training rows twice, without and with --grad_checkpointing, recording the
#    peak GPU memory of each run (nvidia-smi, polled) and the ratio to PyTorch AMP bf16
#    (TORCH_SPS: samples/s of PyTorch + OpenCLIP on the same card and batch, default the H100
#    figure of ../shared/reference/baselines.md);
# 4. checks the NCCL backend (a --features nccl build): a tiny run on one GPU with
#    --dist_backend nccl (every collective through NCCL) against the same run with MPI on host
#    buffers: the per-step losses must agree (max relative difference) — plus both runs' speed;
# 5. runs tic-eval on the synthetic static suite of bench/eval_suite_cpu.sh (one small set per
#    task kind: classification, WILDS, Dollar Street, FairFace, hf_cache Flickr and WinoGAViL;
#    bundled as eval-suite.tar when bench/out/eval-suite exists at build time, else skipped)
#    with the first training run's weights, on DEVICE and on the CPU: images/s per task and
#    the largest metric difference between the two (docs/benchmarks.md, "static suite");
# 6. ends with a short tiny-scale training run as a smoke test.
# Before the training rows it checks the CUDA kernels of the fused training ops
# (tic_kernels::fused, crates/tic-kernels/kernels/fused.cu: LayerNorm, bias + GELU, attention,
# cross-entropy; forward and backward, f32 and bf16) against their CPU f32 kernels at ViT-B-16
# sizes (the fused_cuda_check example: a PASS/FAIL table with max abs/rel errors and a
# determinism column). The training rows measure the block-by-block backward and the detached
# parameter gradients (docs/model.md, "The training graph"), which apply on every device; under
# the default TIC_FUSED_OPS=auto the composed ops run on CUDA. The rows are then rerun with
# TIC_FUSED_OPS=on (names ending in _fused; FUSED_ROWS=0 skips them): the fused CUDA kernels in
# training, for speed and peak memory against the composed rows. The residual blocks' own
# backward pass stays CPU-only.
#
# GPU-side settings (environment): DEVICE (cuda), MODEL (ViT-B-16), BATCHES ("128 256"),
# STEPS (30), PRECISION (bf16), POOL (20000 samples), IMAGE_SIZE (224), WORKERS (12),
# EMBED_N (1024 images for the embedding timing), PY (python3; with numpy, as the GPU machine's),
# FUSED_ROWS (1: also the training rows with TIC_FUSED_OPS=on).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
mode=${1:-build}
bins="tic-train tic-synth tic-embed tic-eval"
# The synthetic static suite (bench/eval_suite_cpu.sh writes it): bundled when present.
suite=${EVAL_SUITE_DIR:-$here/bench/out/eval-suite}

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
  cp "$here/bench/gpu/train_throughput.sh" "$here/bench/gpu/torch_baseline.py" "$1/"
  if [ -f "$suite/tasklist.yml" ]; then
    tar cf "$1/eval-suite.tar" -C "$suite" tasklist.yml manifest.json data
  else
    echo "no $suite/tasklist.yml (run bench/eval_suite_cpu.sh): the eval-suite row is skipped"
  fi
  printf '#!/usr/bin/env bash\nset -uo pipefail\ncd "$(dirname "$0")"\nbash train_throughput.sh gpu\n' \
    > "$1/run.sh"
}

if [ "$mode" = build ]; then
  cd "$here"
  cargo fetch
  [ -d .cuda-tk ] || bash ../shared/gpu/setup-cuda-tk.sh .cuda-tk
  # A link-time stand-in for libnccl.so.2 (the GPU machine's PyTorch wheels carry the real one).
  bash crates/tic-dist/scripts/nccl-link-stub.sh .cuda-tk
  # shellcheck disable=SC1091
  source ../shared/gpu/cuda-env.sh .cuda-tk
  # Its own target folder: the CUDA feature set would otherwise rebuild the CPU artifacts.
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/cuda}
  # nccl = cuda + mpi + NCCL collectives (crates/tic-dist).
  cargo build --release --features tic-train/nccl -p tic-train -p tic-shards -p tic-eval \
    -p tic-model --bins
  cargo build --release --features nccl -p tic-dist --example nccl_check
  cargo build --release --features tic-train/nccl -p tic-train --example fused_cuda_check
  bundle .gpu "$CARGO_TARGET_DIR/release" xz
  for ex in nccl_check fused_cuda_check; do
    strip -o ".gpu/$ex" "$CARGO_TARGET_DIR/release/examples/$ex"
    xz -9 -f ".gpu/$ex"
  done
  cp ../shared/gpu/device-env.sh .gpu/
  # PyTorch + OpenCLIP baseline on the same card: the GPU machine has torch, not open_clip.
  mkdir -p .gpu/whl
  python3 -m pip download -q --no-deps -d .gpu/whl open_clip_torch==2.24.0 ftfy==6.2.0 wcwidth==0.2.13
  # The GPU machine has no MPI: carry MPICH's libraries (and what they link; 42 MiB, 7 MiB as
  # xz) beside the binaries. One process needs no mpiexec (an MPI singleton).
  rm -rf .gpu/lib && mkdir -p .gpu/lib
  for l in libmpich.so.12 libhwloc.so.15 libucp.so.0 libucs.so.0 libuct.so.0 libucm.so.0 libudev.so.1 libnuma.so.1; do
    cp -L "/usr/lib/x86_64-linux-gnu/$l" .gpu/lib/
  done
  tar cf - -C .gpu lib | xz -9 -T2 > .gpu/mpi-libs.tar.xz && rm -rf .gpu/lib
  echo "bundle ready in .gpu/ (carry it to the GPU machine and run: bash .gpu/run.sh)"
  exit 0
fi

if [ "$mode" = dry-run ]; then
  cd "$here"
  cargo build --release -q -p tic-train -p tic-shards -p tic-model -p tic-eval --bins
  # Without the cuda feature the check only says it was skipped: this runs the script's path.
  cargo build --release -q -p tic-train --example fused_cuda_check
  dir=$(mktemp -d)
  bundle "$dir" target/release copy
  cp target/release/examples/fused_cuda_check "$dir/"
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
if [ -f mpi-libs.tar.xz ] && [ ! -d lib ]; then
  "$PY" -c "import lzma,tarfile; tarfile.open(fileobj=lzma.open('mpi-libs.tar.xz')).extractall('.')"
fi
[ -d lib ] && export LD_LIBRARY_PATH="$PWD/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
TORCH_SPS=${TORCH_SPS:-1673}
if [ "$DEVICE" != cpu ]; then
  # shellcheck disable=SC1091
  source ./device-env.sh
  # libnccl.so.2 from PyTorch's wheels (device-env.sh adds only nvidia/cu13/lib).
  sp=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  nccl_lib=$(dirname "$(find "$sp/nvidia" -name libnccl.so.2 | head -1)")
  export LD_LIBRARY_PATH="$nccl_lib:$LD_LIBRARY_PATH"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
fi
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
# PyTorch + OpenCLIP on this card (bf16 autocast), same model and batches, checkpointing off/on:
# its samples/s replaces TORCH_SPS in the ratio column.
if [ "$DEVICE" != cpu ] && [ -d whl ]; then
  "$PY" -m pip install -q --no-index --no-deps --target /tmp/site whl/*.whl \
    && PYTHONPATH=/tmp/site timeout 600 "$PY" torch_baseline.py "$MODEL" "$BATCHES" 10 \
      > "$OUT/torch.tsv" 2> "$OUT/torch_baseline.log" || echo "torch baseline failed: $(tail -3 "$OUT/torch_baseline.log")"
fi
# The fused ops' CUDA kernels against their CPU kernels (a table; a FAIL does not stop the run).
if [ -f fused_cuda_check.xz ] && [ ! -x fused_cuda_check ]; then
  "$PY" -c "import lzma,shutil; shutil.copyfileobj(lzma.open('fused_cuda_check.xz'), open('fused_cuda_check','wb'))"
  chmod +x fused_cuda_check
fi
if [ -x fused_cuda_check ]; then
  timeout 600 ./fused_cuda_check > "$OUT/fused_cuda_check.log" 2>&1 \
    || echo "fused_cuda_check FAILED: $(tail -3 "$OUT/fused_cuda_check.log")"
  cat "$OUT/fused_cuda_check.log"
fi
work=$(mktemp -d)
timeout 300 ./tic-synth --out "$work/synth" --num-samples "$POOL" --num-shards 16 --num-years 1 \
  --image-size "$IMAGE_SIZE" --quiet
table="$OUT/train_throughput.tsv"
printf 'run\tbatch\tsamples_per_s\tstep_ms\tdata_wait_ms\tMFU\tpeak_GiB\tvs_torch_amp\n' > "$table"
# Peak memory of this process tree on the GPU while "$@" runs (nvidia-smi polled every 0.2 s).
with_peak() { # with_peak FILE CMD...
  local file=$1 poll
  shift
  echo 0 > "$file"
  if [ "$DEVICE" != cpu ]; then
    ( peak=0; while sleep 0.2; do
        m=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
        [ "${m:-0}" -gt "$peak" ] && peak=$m && echo "$peak" > "$file"; done ) & poll=$!
  fi
  "$@"
  local rc=$?
  [ -n "${poll:-}" ] && kill "$poll" 2>/dev/null
  return $rc
}
first_run=""
# The rows with the default TIC_FUSED_OPS, then (FUSED_ROWS=1) with the fused CUDA kernels on.
fused_modes=""
[ "${FUSED_ROWS:-1}" = 1 ] && fused_modes="on"
for fused in "" $fused_modes; do
for batch in $BATCHES; do
  for ckpt in "" "--grad_checkpointing"; do
    name="train_${MODEL}_b$batch${ckpt:+_ckpt}${fused:+_fused}"
    first_run=${first_run:-$name}
    # shellcheck disable=SC2086
    with_peak "$work/$name.peak" ${fused:+env TIC_FUSED_OPS=$fused} timeout 900 ./tic-train --scale tic_large --model "$MODEL" \
      --batch_size "$batch" --train_num_samples $((batch * STEPS)) --num_checkpoints 1 --warmup 5 \
      --precision "$PRECISION" --workers "$WORKERS" --dataset_resampled $ckpt \
      --data_dir "$work/synth/pool" --output_dir "$work/runs" --exp_name "$name" \
      --device "$DEVICE" --quiet 2>&1 | tail -5 | tee "$OUT/$name.log" || true
    m="$work/runs/$name/metrics.jsonl"
    [ -f "$m" ] && cp "$m" "$OUT/$name.metrics.jsonl"
    tsps=$(awk -F'\t' -v b="$batch" -v c="$([ -n "$ckpt" ] && echo True || echo False)" \
      '$2 == b && $3 == c && $4 != "OOM" {print $4}' "$OUT/torch.tsv" 2>/dev/null | head -1 || true)
    "$PY" - "$m" "$batch" "$name" "$MODEL" "$(cat "$work/$name.peak")" "${tsps:-$TORCH_SPS}" >> "$table" <<'PY' \
      || printf '%s\t%s\tFAILED\n' "$name" "$batch" >> "$table"
import json, statistics, sys
path, batch, name, model, peak_mib, torch_sps = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), float(sys.argv[6])
rows = [json.loads(l) for l in open(path)][5:]
sps = statistics.median(r["samples_per_s"] for r in rows)
step = statistics.median(r["step_s"] for r in rows) * 1e3
wait = statistics.median(r["data_wait_s"] for r in rows) * 1e3
mfu = f"{sps * 6 * (17.58e9 + 2.92e9) / 989e12:.3f}" if model == "ViT-B-16" else "-"
peak = f"{peak_mib / 1024:.1f}" if peak_mib else "-"
print(f"{name}\t{batch}\t{sps:.0f}\t{step:.1f}\t{wait:.1f}\t{mfu}\t{peak}\t{sps / torch_sps:.2f}")
PY
  done
done
done

# NCCL: the collectives alone (f32/bf16/f16, strided inputs, against MPI on host buffers), then
# every collective of a one-GPU training run through NCCL, against the MPI-free run.
if [ "$DEVICE" != cpu ] && [ -f nccl_check.xz ]; then
  "$PY" -c "import lzma,shutil; shutil.copyfileobj(lzma.open('nccl_check.xz'), open('nccl_check','wb'))"
  chmod +x nccl_check
  timeout 120 ./nccl_check > "$OUT/nccl_check.log" 2>&1 || echo "nccl_check FAILED: $(tail -5 "$OUT/nccl_check.log")"
fi
ntable="$OUT/nccl.tsv"
printf 'backend\tsteps\tsamples_per_s\tmax_rel_loss_diff_vs_mpi\n' > "$ntable"
if [ "$DEVICE" != cpu ]; then
  for be in mpi nccl; do
    timeout 300 ./tic-train --scale tiny --data_dir "$work/synth/pool" --output_dir "$work/runs" \
      --exp_name "dist_$be" --device "$DEVICE" --dist_backend "$be" --train_num_samples 3200 \
      --num_checkpoints 1 --quiet > "$OUT/dist_$be.log" 2>&1 || echo "tic-train --dist_backend $be failed: $(tail -3 "$OUT/dist_$be.log")"
  done
  "$PY" - "$work/runs" >> "$ntable" <<'PY' || printf 'nccl\t-\tFAILED\t-\n' >> "$ntable"
import json, statistics, sys
runs = sys.argv[1]
rows = {be: [json.loads(l) for l in open(f"{runs}/dist_{be}/metrics.jsonl")] for be in ("mpi", "nccl")}
diff = max(abs(a["loss"] - b["loss"]) / abs(a["loss"]) for a, b in zip(rows["mpi"], rows["nccl"]))
assert len(rows["mpi"]) == len(rows["nccl"]) > 0
for be in ("mpi", "nccl"):
    sps = statistics.median(r["samples_per_s"] for r in rows[be][3:])
    print(f"{be}\t{len(rows[be])}\t{sps:.0f}\t{diff:.2e}" if be == "nccl" else f"{be}\t{len(rows[be])}\t{sps:.0f}\t-")
PY
fi

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

# The synthetic static suite (bench/eval_suite_cpu.sh), tic-eval on DEVICE and on the CPU.
stable="$OUT/eval_suite.tsv"
printf 'task\timages\tdevice_s\tdevice_images_per_s\tcpu_s\tcpu_images_per_s\tmax_metric_diff\n' > "$stable"
if [ -f eval-suite.tar ] && [ -f "$weights" ]; then
  mkdir -p "$work/suite" && tar xf eval-suite.tar -C "$work/suite"
  # One output folder per run, named by the run, not the device: in the dry run both are the
  # CPU, and a shared folder would make the second run skip every task as already done.
  for run in device cpu; do
    dev=$([ "$run" = device ] && echo "$DEVICE" || echo cpu)
    timeout 600 ./tic-eval --use_model "$MODEL $weights" --data_dir "$work/suite/data" \
      --tasklist "$work/suite/tasklist.yml" --output_dir "$work/suite/out_$run" --device "$dev" \
      --batch_size 64 --num_workers 8 --json -q > "$work/suite/$run.jsonl" 2> "$OUT/eval_suite_$run.log" \
      || echo "tic-eval suite on $dev failed: $(tail -2 "$OUT/eval_suite_$run.log")"
  done
  "$PY" - "$work/suite" >> "$stable" <<'PY' || echo "eval-suite table failed"
import json, sys
d = sys.argv[1]
images = json.load(open(f"{d}/manifest.json"))["images"]
rows = {x: {r["key"]: r for r in map(json.loads, open(f"{d}/{x}.jsonl"))} for x in ("device", "cpu")}
for key, n in images.items():
    g, c = rows["device"].get(key, {}), rows["cpu"].get(key, {})
    gm, cm = g.get("metrics") or {}, c.get("metrics") or {}
    diffs = [abs(gm[k] - v) for k, v in cm.items() if isinstance(v, (int, float))
             and isinstance(gm.get(k), (int, float)) and v == v and gm[k] == gm[k]]
    cell = lambda r: (f"{r['seconds']:.2f}\t{n / r['seconds']:.1f}" if r.get("status") == "done"
                      else "FAILED\t-")
    print(f"{key}\t{n}\t{cell(g)}\t{cell(c)}\t{max(diffs) if diffs else '-'}")
PY
else
  echo "eval suite skipped (no eval-suite.tar or no weights)" | tee -a "$OUT/eval_suite.log"
fi

# Short run with the real data layout (resharded year folders are what the Makefile feeds).
timeout 300 ./tic-train --scale tiny --data_dir "$work/synth/pool" --output_dir "$work/runs" \
  --exp_name tiny_smoke --device "$DEVICE" --quiet 2>&1 | tail -3 | tee "$OUT/tiny_smoke.log" || true
echo
column -t -s $'\t' "$etable"
echo
column -t -s $'\t' "$stable"
echo
[ -f "$OUT/nccl_check.log" ] && tail -n 12 "$OUT/nccl_check.log" && echo
[ -f "$OUT/fused_cuda_check.log" ] && tail -n 16 "$OUT/fused_cuda_check.log" && echo
[ -f "$OUT/torch.tsv" ] && column -t -s $'\t' "$OUT/torch.tsv" && echo
column -t -s $'\t' "$ntable"
echo
column -t -s $'\t' "$table"
