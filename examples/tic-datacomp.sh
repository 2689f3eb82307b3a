#!/usr/bin/env bash
# TiC-DataComp end to end on real data, as in the TiC-CLIP README, with tic-rs's Makefile.
#
#   DATACOMP_PATH=/data/datacomp/shards UID_SOURCE=/data/tic-uids OUT=/data/tic \
#     SCALE=tic_medium TRAIN_FLAGS="--device cuda --precision bf16" bash examples/tic-datacomp.sh
#
# DATACOMP_PATH: the DataComp pool (local or s3://…); UID_SOURCE: Apple's UID release
# (tic-datacomp_training_yearly_noeval/, tic-datacomp_training_monthly/, the two eval pickles).
# DRY_RUN=1 prints the commands instead of running them.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATACOMP_PATH:?set DATACOMP_PATH to the DataComp pool}"
: "${UID_SOURCE:?set UID_SOURCE to the folder of the TiC UID files from Apple}"
OUT=${OUT:-out/tic-datacomp}
SCALE=${SCALE:-tic_medium}
STRATEGIES=${STRATEGIES:-sequential cumulative-all cumulative-exp restart oracle}
YEARS=${YEARS:-2014 2015 2016 2017 2018 2019 2020 2021 2022}
MAKE_ARGS=(
  DEMO_DIR="$OUT" DATACOMP_PATH="$DATACOMP_PATH" UID_SOURCE="$UID_SOURCE" SCALE="$SCALE"
  YEARS="$YEARS" TRAIN_SPLITS="$YEARS" FIRST_STEP_SPLITS=3 SYNTH_STATIC=0
  STRATEGIES="$STRATEGIES" TRAIN_FLAGS="${TRAIN_FLAGS:-}" EVAL_FLAGS="${EVAL_FLAGS:-}"
)
[ "${DRY_RUN:-0}" = 1 ] && MAKE_ARGS+=(-n)
[ "${DRY_RUN:-0}" = 1 ] || make build
# Splits, stats/sizes, retrieval + DataCompNet eval sets, task list.
make data "${MAKE_ARGS[@]}"
# One run per strategy and time step (warm starts chain by themselves), every checkpoint
# evaluated on every task, then the T×T matrices and the report.
make report "${MAKE_ARGS[@]}"
[ "${DRY_RUN:-0}" = 1 ] || make report-print "${MAKE_ARGS[@]}"
