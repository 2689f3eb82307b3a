#!/usr/bin/env bash
# tic-download against img2dataset 1.40.0 on the same loopback server and metadata (issue 26
# item 6): samples/s and CPU seconds per 1,000 images, DataComp's settings (image_size 512,
# keep_ratio_largest, resize_only_if_bigger, jpg q95, webdataset, face boxes blurred, uid kept,
# retries 2). The server (tic-download's `fixture_server` example) serves N distinct URLs over
# 16 JPEGs of 480x360 to 1230x922 (every row decoded, area-downscaled, re-encoded), a face box
# on every third row. Both tools get the same budget: P processes (tic-download: P shards at
# once, P pixel workers) x T threads / requests in flight each. CPU s are user + sys of the tool
# and every child it waited for (getrusage RUSAGE_CHILDREN), the server excluded. Runs alternate
# (img2dataset, tic-download, ...) R times each; every run is printed, as the machine is shared.
#
#   PY=/path/to/venv/bin/python bash bench/download.sh     # N=2000 P=2 T=32 R=3 by default
#
# PY: an interpreter with img2dataset 1.40.0 (see crates/tic-download/tests/fixtures/
# img2dataset/gen_img2dataset.py for installing it on Python 3.11); without it, only tic-download
# runs.
. "$(dirname "$0")/lib.sh"
N=${N:-2000}
P=${P:-2}
T=${T:-32}
R=${R:-3}
PER_SHARD=${PER_SHARD:-500}
PY=${PY:-python3}
OUT=${BENCH_DIR:-bench/out}/download
TARGET=${CARGO_TARGET_DIR:-target}
# FEATURES=simd: libjpeg-turbo's SIMD (needs nasm), docs/download.md.
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -q -p tic-download --bin tic-download --example fixture_server \
  --features "${FEATURES:-}"
rm -rf "$OUT" && mkdir -p "$OUT"
"$TARGET/${PROFILE:-release}/examples/fixture_server" "$OUT/metadata" --bench "$N" > "$OUT/server.url" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
while [ ! -s "$OUT/server.url" ]; do sleep 0.1; done
echo "server $(cat "$OUT/server.url"), $N rows; P=$P T=$T, $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"

# measure NAME CMD...: runs CMD, prints one table row (wall s, samples/s, CPU s, CPU s / 1k).
measure() {
  local name=$1 dir=$2; shift 2
  python3 - "$name" "$dir" "$N" "$@" <<'PY'
import glob, json, resource, subprocess, sys, time
name, out, n, cmd = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
t0 = time.monotonic()
subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
wall = time.monotonic() - t0
r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
ok = sum(json.load(open(f))["successes"] for f in glob.glob(f"{out}/*_stats.json"))
print(f"| {name} | {wall:.1f} | {ok}/{n} | {ok / wall:.1f} | {cpu:.1f} | {1000 * cpu / max(ok, 1):.1f} |")
PY
}

has_i2d=0
"$PY" -c 'import img2dataset' 2>/dev/null && has_i2d=1 || echo "(no img2dataset in $PY: tic-download only)"
echo "| tool | wall s | successes | samples/s | CPU s | CPU s / 1000 images |"
echo "|---|---|---|---|---|---|"
for r in $(seq "$R"); do
  if [ $has_i2d = 1 ]; then
    rm -rf "$OUT/i2d"
    measure "img2dataset 1.40.0 (run $r)" "$OUT/i2d" "$PY" -c '
import sys
from img2dataset import download
download(url_list=sys.argv[1], output_folder=sys.argv[2], processes_count=int(sys.argv[3]),
         thread_count=int(sys.argv[4]), number_sample_per_shard=int(sys.argv[5]),
         image_size=512, resize_mode="keep_ratio_largest", resize_only_if_bigger=True,
         encode_format="jpg", encode_quality=95, output_format="webdataset",
         input_format="parquet", url_col="url", caption_col="text", bbox_col="face_bboxes",
         save_additional_columns=["uid"], oom_shard_count=8, retries=2, timeout=10,
         enable_wandb=False, distributor="multiprocessing")
' "$OUT/metadata" "$OUT/i2d" "$P" "$T" "$PER_SHARD"
  fi
  rm -rf "$OUT/tic"
  measure "tic-download (run $r)" "$OUT/tic/shards" "$TARGET/${PROFILE:-release}/tic-download" \
    --data_dir "$OUT/tic" --metadata_dir "$OUT/metadata" --processes_count "$P" \
    --thread_count "$T" --workers "$P" --number_sample_per_shard "$PER_SHARD" --quiet
done
rm -rf "$OUT/i2d" "$OUT/tic"
