#!/usr/bin/env bash
# Runs every tic-fuzz target coverage-guided under cargo-fuzz (libFuzzer) for FUZZ_SECONDS
# (default 60) each, starting from fuzz/regressions/<target>/ and a synthetic pool's files.
# The stable, time-bounded run that `make test` does is `make fuzz-smoke` (docs/fuzzing.md).
# Needs cargo-fuzz (`cargo install cargo-fuzz`). On a stable toolchain RUSTC_BOOTSTRAP=1 lets
# cargo-fuzz pass its -Z flags; the address sanitizer is off (Rust code, no unsafe parsing).
# -rss_limit_mb is the memory cap: an input that makes a reader allocate past it is a crash.
set -euo pipefail
cd "$(dirname "$0")"
SECS=${FUZZ_SECONDS:-60}
TARGETS=${FUZZ_TARGETS:-"shard_scan npy_uids npy_int_vector pickles torch_pickle count_json tasklist checkpoint hf_cache exif download_metadata"}
export RUSTC_BOOTSTRAP=1
# Seeds: a real synthetic shard, a uid npy and the TiC pickles.
if [ ! -f corpus/.seeded ]; then
  mkdir -p corpus/shard_scan corpus/npy_uids corpus/pickles
  (cd .. && cargo run -q --release -p tic-shards --bin tic-synth -- --out fuzz/target/seed \
     --num-samples 6 --num-shards 1 --image-size 8 --quiet)
  cp target/seed/pool/00000000.tar corpus/shard_scan/
  cp target/seed/uids/tic-datacomp_training_yearly_noeval/2014.npy corpus/npy_uids/
  cp target/seed/uids/*.pkl corpus/pickles/
  touch corpus/.seeded
fi
for t in $TARGETS; do
  echo "== $t for ${SECS}s"
  mkdir -p "corpus/$t" "regressions/$t"
  cargo fuzz run --sanitizer none "$t" "corpus/$t" "regressions/$t" -- -max_total_time="$SECS" \
    -max_len=65536 -rss_limit_mb=2048 2>&1 | tail -n 3
done
