#!/usr/bin/env bash
# Runs every fuzz target for FUZZ_SECONDS (default 60) each, seeded with small valid inputs.
# Needs cargo-fuzz (`cargo install cargo-fuzz`). On a stable toolchain RUSTC_BOOTSTRAP=1 lets
# cargo-fuzz pass its -Z flags; the address sanitizer is off (Rust code, no unsafe parsing).
set -euo pipefail
cd "$(dirname "$0")"
SECS=${FUZZ_SECONDS:-60}
export RUSTC_BOOTSTRAP=1
mkdir -p corpus/shard_scan corpus/npy_uids corpus/pickles
# Seeds: a real synthetic shard, a uid npy and the TiC pickles.
if [ ! -f corpus/.seeded ]; then
  (cd .. && cargo run -q --release -p tic-shards --bin tic-synth -- --out fuzz/target/seed \
     --num-samples 6 --num-shards 1 --image-size 8 --quiet)
  cp target/seed/pool/00000000.tar corpus/shard_scan/
  cp target/seed/uids/tic-datacomp_training_yearly_noeval/2014.npy corpus/npy_uids/
  cp target/seed/uids/*.pkl corpus/pickles/
  touch corpus/.seeded
fi
for t in shard_scan npy_uids pickles; do
  echo "== $t for ${SECS}s"
  cargo fuzz run --sanitizer none "$t" "corpus/$t" -- -max_total_time="$SECS" -max_len=65536 2>&1 | tail -n 3
done
