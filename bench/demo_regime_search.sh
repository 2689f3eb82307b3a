#!/bin/bash
# The demo regime search of docs/results.md ("The demo's regime"): the shared step-0 run only
# (2014 split, `--strategy restart`) for each seed, with extra tic-train flags, then tic-eval on
# the 2014 retrieval set. Prints per seed the mean loss of the last 10 steps and recall@1.
#
#   make demo-data SEED=N DEMO_DIR=out/s5/seedN   # once per seed (a few seconds each)
#   bash bench/demo_regime_search.sh NAME "--train_num_samples 7680" "0 1 2 3 4"
#
# BIN: the release binaries (target/release); DATA: the per-seed demo folders (out/s5);
# OUT: where runs go (out/regime-search/NAME/s<seed>). Finished runs are not redone.
set -euo pipefail
name=$1; flags=${2:-}; seeds=${3:-0 1 2 3 4}
B=${BIN:-target/release}; D=${DATA:-out/s5}; O=${OUT:-out/regime-search}/$name
mkdir -p "$O"
for s in $seeds; do
  r=$O/s$s
  if [ ! -f "$r/compute.json" ]; then
    rm -rf "$r"
    # shellcheck disable=SC2086
    RAYON_NUM_THREADS=1 "$B/tic-train" --scale tiny --strategy restart \
      --data_dir "$D/seed$s/tic-datacomp/yearly/train/2014" --first_step_splits 1 \
      --output_dir "$O" --exp_name "s$s" --seed "$s" --workers 1 --num_checkpoints 1 -q $flags >/dev/null
  fi
  if [ ! -f "$r/eval/eval_results.jsonl" ]; then
    RAYON_NUM_THREADS=1 "$B/tic-eval" --train_output_dir "$r" --output_dir "$r/eval" \
      --data_dir "$D/seed$s/data" --tasklist "$D/seed$s/tasklist.yml" \
      --tasks tic/datacomp/retrieval/yearly/2014 --num_workers 1 --batch_size 256 -q >/dev/null
  fi
  python3 - "$r" "$name" "$s" <<'PY'
import json, sys
r, name, s = sys.argv[1:]
loss = [json.loads(l)["loss"] for l in open(f"{r}/metrics.jsonl")][-10:]
rec = [json.loads(l)["metrics"]["mean_recall@1"] for l in open(f"{r}/eval/eval_results.jsonl")][0]
print(f"{name} seed{s} loss10={sum(loss) / len(loss):.3f} r@1={100 * rec:.1f}")
PY
done
