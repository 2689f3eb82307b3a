#!/usr/bin/env bash
# TiC-YFCC15M end to end: the original's create_splits.py + create_tars.py, then the same
# training / evaluation / metrics as TiC-DataComp (four time steps: 2004-2008 … 2013-2014).
#
#   YFCC_CSV=/data/yfcc15m.csv YFCC_IMAGES=/data/yfcc15m/images OUT=/data/tic \
#     SCALE=tic_medium bash examples/tic-yfcc15m.sh
#
# YFCC_IMAGES holds the images at key[:3]/key[3:6]/key.jpg as the original expects.
# DRY_RUN=1 prints the commands instead of running them.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${YFCC_CSV:?set YFCC_CSV to yfcc15m.csv}"
: "${YFCC_IMAGES:?set YFCC_IMAGES to the image folder}"
OUT=${OUT:-out/tic-yfcc15m}
MAKE_ARGS=(
  DATASET=yfcc15m DEMO_DIR="$OUT" YFCC_CSV="$YFCC_CSV" YFCC_IMAGES="$YFCC_IMAGES"
  SCALE="${SCALE:-tic_medium}" STRATEGIES="${STRATEGIES:-sequential cumulative-all restart oracle}"
  TRAIN_FLAGS="${TRAIN_FLAGS:-}" EVAL_FLAGS="${EVAL_FLAGS:-}"
)
[ "${DRY_RUN:-0}" = 1 ] && MAKE_ARGS+=(-n)
[ "${DRY_RUN:-0}" = 1 ] || make build
make data "${MAKE_ARGS[@]}"
make report "${MAKE_ARGS[@]}"
[ "${DRY_RUN:-0}" = 1 ] || make report-print "${MAKE_ARGS[@]}"
