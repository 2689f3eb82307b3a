#!/usr/bin/env bash
# Throughput of tic-reshard and tic-stats against `cp -r` (the I/O floor) on a synthetic pool
# shaped like the baseline in shared/reference/baselines.md: 100,000 samples in 40 shards,
# ~13-14 KB JPEGs, a 30 % subset (+100 uids absent from the pool). Warm page cache.
#
#   bash bench/reshard.sh                 # N=100000 SHARDS=40 by default
#   N=20000 SHARDS=8 bash bench/reshard.sh
. "$(dirname "$0")/lib.sh"
N=${N:-100000}
SHARDS=${SHARDS:-40}
IMG=${IMG:-160}
NOISE=${NOISE:-13}
QUALITY=${QUALITY:-88}
J=${J:-2}
OUT=${BENCH_DIR:-bench/out}
BIN=${CARGO_TARGET_DIR:-target}/release
cargo build --release -p tic-shards --bins -q
POOL=$OUT/pool-$N
if [ ! -f "$POOL/synth.json" ]; then
  echo "generating $N samples in $SHARDS shards under $POOL ..."
  $BIN/tic-synth --out "$POOL" --num-samples "$N" --num-shards "$SHARDS" --image-size "$IMG" \
    --noise "$NOISE" --jpeg-quality "$QUALITY" --bench-subset 0.3 --quiet
fi
bytes=$(du -cb "$POOL"/pool/*.tar | tail -1 | cut -f1)
echo "pool: $N samples, $SHARDS shards, $((bytes / 1000000)) MB, mean sample $((bytes / N)) B"
cat "$POOL"/pool/*.tar > /dev/null  # warm the page cache

# median of R runs of a command; prints seconds
R=${R:-3}
median() {
  local times=() t
  for _ in $(seq "$R"); do
    eval "$2" >/dev/null 2>&1 || true
    local s=$(date +%s.%N)
    eval "$1" >/dev/null 2>"$OUT/last.err" || { cat "$OUT/last.err"; exit 1; }
    t=$(echo "$(date +%s.%N) - $s" | bc)
    times+=("$t")
  done
  printf '%s\n' "${times[@]}" | sort -g | sed -n "$(( (R + 1) / 2 ))p"
}
W=$OUT/work
mkdir -p $W
t_cp=$(median "cp -r $POOL/pool $W/cp" "rm -rf $W/cp")
t_rs=$(median "$BIN/tic-reshard -i $POOL/pool -o $W/splits/r -s $POOL/bench_subset.npy -j $J -q" "rm -rf $W/splits")
out_n=$(grep -o '"output_count": [0-9]*' $W/splits/r/meta.json | grep -o '[0-9]*$')
t_rc=$(median "$BIN/tic-reshard -i $POOL/pool -o $W/cls/r -s $POOL/bench_subset.npy -c $POOL/bench_uid2classid.pkl -j $J -q" "rm -rf $W/cls")
t_st=$(median "$BIN/tic-stats --url $W/splits --num-proc $J -q" "rm -f $W/splits/r/*_stats.json")
t_st_pool=$(median "$BIN/tic-stats --url $OUT/statpool --num-proc $J -q" "rm -rf $OUT/statpool && mkdir -p $OUT/statpool && ln -s $(realpath $POOL/pool) $OUT/statpool/all && rm -f $POOL/pool/*_stats.json")
# restore the pool's stats files
$BIN/tic-stats --url "$OUT/statpool" -q >/dev/null 2>&1 || true
rate() { echo "scale=0; $1 / $2" | bc; }
mbs() { echo "scale=1; $bytes / $1 / 1000000" | bc; }
echo
echo "| step | wall (s) | samples/s | MB/s of input | vs cp -r |"
echo "|---|---|---|---|---|"
echo "| cp -r (I/O floor) | $t_cp | $(rate $N $t_cp) | $(mbs $t_cp) | 1.00 |"
echo "| tic-reshard -j $J (30 % subset, $out_n out) | $t_rs | $(rate $N $t_rs) | $(mbs $t_rs) | $(echo "scale=2; $t_rs / $t_cp" | bc) |"
echo "| tic-reshard -c -j $J | $t_rc | $(rate $N $t_rc) | $(mbs $t_rc) | $(echo "scale=2; $t_rc / $t_cp" | bc) |"
echo "| tic-stats over the reshard output ($out_n samples) | $t_st | $(rate $out_n $t_st) | - | - |"
echo "| tic-stats over the whole pool ($N samples) | $t_st_pool | $(rate $N $t_st_pool) | $(mbs $t_st_pool) | - |"
echo
echo "machine: $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB; median of $R runs; warm page cache"
