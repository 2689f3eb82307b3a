#!/usr/bin/env bash
# Crash soak (issue 15, "Proof"): kill -9 tic-reshard, tic-train and tic-eval at many points of
# their runs, rerun the same command, and check that
#   1. every rerun that exits 0 leaves an output byte-identical to an uninterrupted run
#      (a rerun exiting 0 on an incomplete or different folder is a failure);
#   2. no temporary file (`.tic-tmp-*`, or `.tmpXXXXXX` of the tempfile crate) remains after a
#      rerun;
#   3. a folder that carries its completion marker right after a kill (tic-reshard's meta.json,
#      tic-train's compute.json) is complete, i.e. already identical to the uninterrupted run;
#   4. after a kill during `tic-reshard --overwrite` of a finished output, the *old* command
#      either refuses the folder (non-zero) or exits 0 with its own finished output intact.
# Kill points are taken by polling the output folder (the Nth shard, a temp file, a marker) and
# at random delays; a point the run passes before the poll sees it is retried up to 3 times.
#
# Usage: bash tests/crash_soak.sh            (from the repository root; builds target/debug)
#        SOAK_SEED=N SOAK_KEEP=1 bash tests/crash_soak.sh
# SOAK_SEED seeds the random kill delays (default: the time); SOAK_KEEP=1 keeps the work folder.
# Exit status: 0 when every check held, 1 on any violation (each is printed as FAIL: ...).
#
# What is compared, and why (everything else is compared byte for byte):
#   tic-reshard  the whole output folder, every file including dotfiles, byte for byte; the
#                uninterrupted reference is made at the same path with the same arguments, so
#                even meta.json (which records the output path and cwd) must match exactly.
#   tic-train    every file of the run folder except out.log (human log: wall-clock rates,
#                "resumed from" lines) and metrics.jsonl's timing fields samples_per_s,
#                data_wait_s and step_s (wall-clock measurements); metrics.jsonl's other fields
#                (step, epoch, loss, lr, grad_norm, …) must match line for line, i.e. every step
#                is logged exactly once with the same values after a resume.
#   tic-eval     the whole output folder (eval_results.jsonl, eval_info.json; an
#                eval_failures.jsonl or any other extra file is a difference); the Markdown summary
#                on stdout is not compared (it has seconds and images/s, and a resumed run lists
#                the tasks it skipped).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
echo "crash soak: building target/debug (cargo build --workspace --bins)"
cargo build --workspace --bins -q
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug

W=$(mktemp -d "${TMPDIR:-/tmp}/tic-crash-soak.XXXXXX")
cleanup() {
    # Kill only what this script started (a victim may still be running after a failure).
    if [[ -n "${VICTIM:-}" ]]; then kill -9 "$VICTIM" 2>/dev/null || true; fi
    if [[ "${SOAK_KEEP:-0}" == 1 ]]; then
        echo "crash soak: work folder kept: $W"
    else
        rm -rf "$W"
    fi
}
trap cleanup EXIT
cd "$W"

SEED=${SOAK_SEED:-$(date +%s)}
RANDOM=$SEED
KILLS=0
RERUNS=0
FAILURES=0
START=$SECONDS
shopt -s nullglob dotglob

# q CMD...: runs a setup command quietly; its failure ends the soak with its log.
q() {
    "$@" >>"$W/setup.log" 2>&1 || {
        echo "crash soak: setup command failed: $*" >&2
        tail -n 20 "$W/setup.log" >&2
        exit 1
    }
}

fail() {
    echo "FAIL: $*" >&2
    FAILURES=$((FAILURES + 1))
}

# ---- helpers ---------------------------------------------------------------------------------

# tree_diff REF DIR [EXCLUDE_REGEX]: prints the differences between two folders (file sets and
# contents, dotfiles included); empty output = identical.
tree_diff() {
    local ref=$1 dir=$2 ex=${3:-'^$'}
    diff <(cd "$ref" && find . -type f | sort | grep -Ev "$ex") \
        <(cd "$dir" && find . -type f | sort | grep -Ev "$ex") | sed 's/^/    /' || true
    local f
    while read -r f; do
        [[ -f "$dir/$f" ]] || continue
        cmp -s "$ref/$f" "$dir/$f" || echo "    $f differs"
    done < <(cd "$ref" && find . -type f | sort | grep -Ev "$ex")
}

# temps DIR: the temporary files under DIR: tic-rs's own (`.tic-tmp-*`) and those of the
# tempfile crate's default name (`.tmpXXXXXX`, e.g. from a library writing "atomically").
temps() {
    find "$1" \( -name '.tic-tmp-*' -o -name '.tmp??????' \) 2>/dev/null || true
}

# start_victim CMD...: starts CMD in the background (stdout/stderr to $W/victim.log).
start_victim() {
    "$@" >"$W/victim.log" 2>&1 &
    VICTIM=$!
}

# kill_when DESC COND...: polls COND (a command) until it succeeds, then kill -9 the victim.
# Returns 1 (no kill) if the victim exited before COND held.
kill_when() {
    local desc=$1
    shift
    while kill -0 "$VICTIM" 2>/dev/null; do
        if "$@"; then
            kill -9 "$VICTIM" 2>/dev/null || true
            wait "$VICTIM" 2>/dev/null || true
            VICTIM=
            KILLS=$((KILLS + 1))
            KILL_DESC=$desc
            return 0
        fi
    done
    wait "$VICTIM" 2>/dev/null || true
    VICTIM=
    return 1
}

# Conditions for kill_when (bash builtins only, so polling is fast).
# has DIR PATTERN: a file matching PATTERN (a glob or a plain name) exists in DIR.
has() { local a=("$1"/$2); ((${#a[@]} > 0)) && [[ -e ${a[0]} ]]; }
lacks() { ! has "$@"; }
count_ge() { local a=("$1"/$2); ((${#a[@]} >= $3)); }
lines_ge() { [[ -f $1 ]] && (($(wc -l <"$1") >= $2)); }
now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }
# elapsed_ge MS: MS milliseconds have passed since the victim started (T0, set by try_kill).
elapsed_ge() { ((${EPOCHREALTIME/./} / 1000 - T0 >= $1)); }

# ---- inputs: a small synthetic pool, eval sets and a task list (tests/synth_inputs.sh) -------
# shellcheck source=synth_inputs.sh
source "$ROOT/tests/synth_inputs.sh"
synth_inputs
echo "crash soak: inputs ready in $((SECONDS - START)) s (work folder $W, seed $SEED)"

# ---- the checks ------------------------------------------------------------------------------

# rerun_check TOOL REF DIR EXCLUDE CMD...: reruns CMD after a kill; it must exit 0, leave no
# temporary file and leave DIR identical to REF (files matching EXCLUDE, a regex on ./paths,
# are not compared).
rerun_check() {
    local tool=$1 ref=$2 dir=$3 ex=$4
    shift 4
    RERUNS=$((RERUNS + 1))
    local rc=0
    "$@" >"$W/rerun.log" 2>&1 || rc=$?
    local t
    t=$(temps "$dir")
    [[ -z $t ]] || fail "$tool, kill at '$KILL_DESC': the rerun left temporary files: $t"
    if ((rc != 0)); then
        fail "$tool, kill at '$KILL_DESC': the rerun exited $rc: $(tail -n 3 "$W/rerun.log")"
        return 1
    fi
    # (Temporary files are reported above, not again as differences.)
    local d
    d=$(tree_diff "$ref" "$dir" "($ex)|/\.tic-tmp-[^/]*$|/\.tmp[^/]{6}$")
    if [[ -n $d ]]; then
        fail "$tool, kill at '$KILL_DESC': the rerun exited 0 but its output is not the uninterrupted run's:"$'\n'"$d"
        return 1
    fi
    return 0
}

# marker_check TOOL MARKER DIR EXCLUDE REF...: right after a kill, a folder holding its
# completion marker must already be one of the finished outputs REF... (EXCLUDE: files a killed
# writer may leave beside a finished output, e.g. its lock file).
marker_check() {
    local tool=$1 marker=$2 dir=$3 ex=$4
    shift 4
    [[ -e $dir/$marker ]] || return 0
    local r
    for r in "$@"; do
        [[ -z $(tree_diff "$r" "$dir" "$ex") ]] && return 0
    done
    fail "$tool, kill at '$KILL_DESC': $dir has $marker right after the kill but is not a finished output:"$'\n'"$(tree_diff "$1" "$dir" "$ex")"
}

# try_kill TOOL DESC SETUP CMD -- COND...: runs SETUP, starts CMD and kills it when COND holds;
# retried (SETUP again) up to 3 times when the run ends first. Returns 1 if it never hit.
try_kill() {
    local tool=$1 desc=$2 setup=$3
    shift 3
    local cmd=()
    while [[ $1 != -- ]]; do
        cmd+=("$1")
        shift
    done
    shift
    local attempt
    for attempt in 1 2 3; do
        $setup
        T0=$(now_ms)
        start_victim "${cmd[@]}"
        kill_when "$desc" "$@" && return 0
    done
    fail "$tool: kill point '$desc' never reached in 3 runs (each finished first)"
    return 1
}

# kill_point TOOL SETUP CMD_VAR LABEL_PREFIX CHECK DESC COND...: kills the command held in the
# array named CMD_VAR when COND holds (try_kill with SETUP, the kill point named LABEL_PREFIX DESC),
# then runs CHECK DESC on what the kill left. Always returns 0 (a missed point is a failure).
kill_point() {
    local tool=$1 setup=$2 prefix=$4 check=$5 desc=$6
    local -n kill_point_cmd=$3
    shift 6
    try_kill "$tool" "$prefix$desc" "$setup" "${kill_point_cmd[@]}" -- "$@" || return 0
    $check "$desc"
}

# kill_state DIR: what a kill left in DIR, for the notes ("N tars, M temp files").
kill_state() {
    local n=("$1"/*.tar)
    echo "${#n[@]} tars, $(temps "$1" | wc -l) temp files"
}

# line_count FILE: the lines of FILE (0 when it does not exist).
line_count() {
    if [[ -f $1 ]]; then wc -l <"$1"; else echo 0; fi
}

LOG=$W/soak.log
note() { echo "  $*" | tee -a "$LOG"; }

# ---- tic-reshard: a normal run and an --overwrite of a finished output -----------------------
# Small output shards (10 samples) so that a run writes ~70 shards and the kill points spread.
OUT=split
NEW=("$BIN/tic-reshard" -i synth/pool -o $OUT -s $TRAIN_UIDS/$Y1.npy --shard-size 10 -j 1 -q)
OLD=("$BIN/tic-reshard" -i synth/pool -o $OUT -s $TRAIN_UIDS/$Y0.npy --shard-size 10 -j 1 -q)
OVER=("${NEW[@]}" --overwrite)
# Uninterrupted references, made at the same path with the same arguments (meta.json records them).
T0=$(now_ms)
q "${NEW[@]}" && mv $OUT ref_new
NEW_MS=$(($(now_ms) - T0))
q "${OLD[@]}" && cp -a $OUT ref_old
T0=$(now_ms)
q "${OVER[@]}" && mv $OUT ref_over
OVER_MS=$(($(now_ms) - T0))
NSHARDS=$(find ref_new -name '*.tar' | wc -l)
OLD_TARS=$(find ref_old -name '*.tar' | wc -l)
(( NSHARDS >= 40 && OLD_TARS >= 40 )) || { echo "crash soak: too few output shards ($NSHARDS, $OLD_TARS)" >&2; exit 1; }
# A killed tic-reshard may leave its lock file (harmless: the kernel dropped the flock) and its
# plan file beside a finished meta.json; nothing else.
LEFT_BY_KILL='^\./(\.tic-lock|\.tic-reshard-plan\.json)$'
PLAN=.tic-reshard-plan.json
stats_ge() { count_ge $OUT '*_stats.json' "$1"; }
planned_stats_ge() { has $OUT $PLAN && stats_ge "$1"; }
planned_temp() { has $OUT $PLAN && has $OUT '.tic-tmp-*'; }
emptying() { lacks $OUT meta.json && lacks $OUT $PLAN && ! count_ge $OUT '*.tar' $((OLD_TARS / 2)); }
fresh() { rm -rf $OUT; }
old_output() { rm -rf $OUT && cp -a ref_old $OUT; }

echo "crash soak: tic-reshard, normal run ($NSHARDS output shards, $NEW_MS ms uninterrupted)" | tee -a "$LOG"
# reshard_checks DESC: after a kill of the normal run.
reshard_checks() {
    local state
    state=$(kill_state $OUT)
    marker_check tic-reshard meta.json $OUT "$LEFT_BY_KILL" ref_new
    rerun_check tic-reshard ref_new $OUT '^$' "${NEW[@]}" &&
        note "killed at '$1' ($state): rerun identical"
    return 0
}
reshard_point() { kill_point tic-reshard fresh NEW "" reshard_checks "$@"; }
reshard_point "pass 1 (lock taken)" has $OUT .tic-lock
reshard_point "plan file written" has $OUT $PLAN
reshard_point "first shard being written" has $OUT '.tic-tmp-*'
for k in 1 5 $((NSHARDS / 4)) $((NSHARDS / 2)) $((3 * NSHARDS / 4)) $((NSHARDS - 1)); do
    reshard_point "$k shards done" stats_ge $k
done
reshard_point "every shard done, meta.json not yet" stats_ge $NSHARDS
# Timed kills fall in the first half of the uninterrupted run: a busy machine can make the
# reference slower than the retries, and a point past their end is never reached.
for _ in 1 2 3; do
    d=$((RANDOM % (NEW_MS / 2 + 1)))
    reshard_point "after ${d} ms" elapsed_ge $d
done
# A kill of the resuming rerun too.
if try_kill tic-reshard "10 shards done" fresh "${NEW[@]}" -- stats_ge 10; then
    resume() { :; }
    if try_kill tic-reshard "resume, then killed at 30 shards" resume "${NEW[@]}" -- stats_ge 30; then
        rerun_check tic-reshard ref_new $OUT '^$' "${NEW[@]}" &&
            note "killed at 10 shards, its rerun killed at 30: final rerun identical"
    fi
fi || true

echo "crash soak: tic-reshard --overwrite of a finished output ($OLD_TARS old shards, $OVER_MS ms uninterrupted)" | tee -a "$LOG"
# overwrite_checks DESC: after a kill of the --overwrite run.
overwrite_checks() {
    local desc=$1 state
    state=$(kill_state $OUT)
    marker_check tic-reshard meta.json $OUT "$LEFT_BY_KILL" ref_old ref_over
    # The old command must either find its finished output intact or refuse the folder.
    local rc=0
    "${OLD[@]}" >"$W/old.log" 2>&1 || rc=$?
    RERUNS=$((RERUNS + 1))
    local how="refused ($rc)"
    if ((rc == 0)); then
        how="exit 0 on the intact old output"
        [[ -z $(tree_diff ref_old $OUT "$LEFT_BY_KILL") ]] ||
            fail "tic-reshard, kill at '$KILL_DESC': the old command exited 0 on a folder that is not its finished output:"$'\n'"$(tree_diff ref_old $OUT "$LEFT_BY_KILL")"
    fi
    rerun_check tic-reshard ref_over $OUT '^$' "${OVER[@]}" &&
        note "killed at '$desc' ($state): old command $how; --overwrite rerun identical"
    return 0
}
overwrite_point() { kill_point tic-reshard old_output OVER "--overwrite: " overwrite_checks "$@"; }
overwrite_point "pass 1 (lock taken)" has $OUT .tic-lock
overwrite_point "old meta.json removed" lacks $OUT meta.json
overwrite_point "old shards being deleted" emptying
overwrite_point "plan file written" has $OUT $PLAN
overwrite_point "first new shard being written" planned_temp
for k in 1 $((NSHARDS / 4)) $((NSHARDS / 2)) $((NSHARDS - 1)); do
    overwrite_point "$k new shards done" planned_stats_ge $k
done
overwrite_point "every new shard done, meta.json not yet" planned_stats_ge $NSHARDS
for _ in 1 2; do
    d=$((RANDOM % (OVER_MS / 2 + 1)))
    overwrite_point "after ${d} ms" elapsed_ge $d
done

# ---- tic-train: tiny scale, a resumable state every 2 steps ------------------------------------
# 12 steps of 32 samples in 2 epochs; states are saved at steps 2, 4, …, 12 (40 MB each).
RUN=runs/r
TRAIN=("$BIN/tic-train" --scale tiny --data_dir ref_new --output_dir runs --exp_name r
    --train_num_samples 384 --num_checkpoints 2 --checkpoint_every 2 --workers 1 --seed 0 -q)
# out.log is the human log (wall-clock rates, resume lines); metrics.jsonl is compared below
# without its wall-clock fields.
TRAIN_EXCLUDE='^\./(out\.log|metrics\.jsonl)$'
strip_timing() { sed -E 's/,?"(samples_per_s|data_wait_s|step_s)":[^,}]*//g' "$1"; }
T0=$(now_ms)
q "${TRAIN[@]}" && mv $RUN ref_train
TRAIN_MS=$(($(now_ms) - T0))
[[ -f ref_train/compute.json ]] || { echo "crash soak: the reference tic-train run failed" >&2; exit 1; }
STEPS=$(wc -l <ref_train/metrics.jsonl)
CK=$RUN/checkpoints
metrics_ge() { lines_ge $RUN/metrics.jsonl "$1"; }
started_no_step() { has $RUN params.txt && ! metrics_ge 1; }
saving_after() { metrics_ge "$1" && has $CK '.tic-tmp-*'; }
fresh_run() { rm -rf $RUN; }

echo "crash soak: tic-train ($STEPS steps, $TRAIN_MS ms uninterrupted)" | tee -a "$LOG"
# train_checks DESC: after a kill of the training run.
train_checks() {
    local desc=$1 t m
    t=$(temps $RUN | wc -l)
    m=$(line_count $RUN/metrics.jsonl)
    marker_check tic-train compute.json $RUN "$TRAIN_EXCLUDE" ref_train
    if rerun_check tic-train ref_train $RUN "$TRAIN_EXCLUDE" "${TRAIN[@]}"; then
        if cmp -s <(strip_timing ref_train/metrics.jsonl) <(strip_timing $RUN/metrics.jsonl); then
            note "killed at '$desc' ($m steps logged, $t temp files): rerun identical"
        else
            fail "tic-train, kill at '$desc': metrics.jsonl (without timings) differs from the uninterrupted run's:"$'\n'"$(diff <(strip_timing ref_train/metrics.jsonl) <(strip_timing $RUN/metrics.jsonl) | head -n 6)"
        fi
    fi
    return 0
}
train_point() { kill_point tic-train fresh_run TRAIN "" train_checks "$@"; }
train_point "started, before step 1" started_no_step
train_point "during the first state save" saving_after 2
train_point "mid-epoch 1" metrics_ge 5
train_point "during the epoch-1 save" saving_after 6
train_point "mid-epoch 2" metrics_ge 9
train_point "during the last save" saving_after $STEPS
d=$((TRAIN_MS / 4 + RANDOM % (TRAIN_MS / 2)))
train_point "after ${d} ms" elapsed_ge $d

# ---- tic-eval: three tasks, resumed by skipping recorded ones --------------------------------
cp -a ref_train model
EV=ev
EVAL=("$BIN/tic-eval" --train_output_dir model --output_dir $EV --data_dir data --tasklist tasklist.yml
    --num_workers 1 --batch_size 16 -q)
T0=$(now_ms)
q "${EVAL[@]}" && mv $EV ref_eval
EVAL_MS=$(($(now_ms) - T0))
[[ $(wc -l <ref_eval/eval_results.jsonl) == "$NTASKS" ]] || { echo "crash soak: the reference tic-eval run failed" >&2; exit 1; }
results_ge() { lines_ge $EV/eval_results.jsonl "$1"; }
eval_started() { has $EV eval_info.json && ! results_ge 1; }
fresh_eval() { rm -rf $EV; }

echo "crash soak: tic-eval ($NTASKS tasks, $EVAL_MS ms uninterrupted)" | tee -a "$LOG"
# eval_checks DESC: after a kill of the evaluation.
eval_checks() {
    local m
    m=$(line_count $EV/eval_results.jsonl)
    rerun_check tic-eval ref_eval $EV '^$' "${EVAL[@]}" &&
        note "killed at '$1' ($m results recorded): rerun identical"
    return 0
}
eval_point() { kill_point tic-eval fresh_eval EVAL "" eval_checks "$@"; }
eval_point "started, no result yet" eval_started
eval_point "1 task recorded" results_ge 1
eval_point "2 tasks recorded" results_ge 2
d=$((RANDOM % EVAL_MS))
eval_point "after ${d} ms" elapsed_ge $d

# ---- summary ---------------------------------------------------------------------------------
echo "crash soak: $KILLS kills, $RERUNS reruns, $FAILURES failures ($((SECONDS - START)) s, seed $SEED)"
((FAILURES == 0))
