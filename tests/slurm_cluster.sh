#!/usr/bin/env bash
# A real Slurm cluster (issue 29 item 1): brings up munged, slurmctld and slurmd on this machine
# (Debian 12's Slurm 22.05; one node of 2 CPUs; keys, state, spool, logs and slurm.conf in a
# temporary folder, all torn down on exit), then runs the launch lines of docs/distributed.md:
#   sbatch examples/tic-train.sbatch <tiny run>          2 tasks, srun --mpi=pmi2 tic-train
#   sbatch --wrap "srun --mpi=pmi2 tic-eval …"           2 tasks
# and checks that
#   1. the job trains bit for bit as `mpirun -np 2` (every checkpoint byte-identical, the same
#      metrics.jsonl without its wall-clock fields) and its out.log names the Slurm job id;
#   2. `scontrol requeue` of the running job (Slurm's preemption: SIGTERM to every task, then the
#      same batch script again) ends with the same checkpoints, every metrics step once;
#   3. the time-limit signal (`--signal=B:USR1@120`, sent here at once with
#      `scancel --batch --signal=USR1`) stops the ranks with exit 75 and the script requeues its
#      own job, which ends the same way;
#   4. `scancel` of a running job leaves no rank behind and the job is not requeued;
#   5. `srun --mpi=none` (a PMI flavour MPICH does not speak) is refused by the launch check,
#      which names the flavour used and `--mpi=pmi2`;
#   6. the 2-task tic-eval writes the results one process writes.
# Skips (exit 0, saying why) only where it cannot run: not root, or Slurm / munge / MPICH not
# installed (`make deps` installs them).
#
# Usage: bash tests/slurm_cluster.sh      (from the repository root; builds target/debug)
#        SLURM_KEEP=1 bash tests/slurm_cluster.sh      keeps the work folder (and its logs)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
skip() {
    echo "slurm cluster test: SKIPPED: $*"
    exit 0
}
[[ $(id -u) == 0 ]] || skip "needs root (slurmd starts job tasks as their user; CI runs as root)"
for c in munged slurmctld slurmd sbatch srun scontrol scancel squeue mpirun python3; do
    command -v $c >/dev/null || skip "$c is not installed (make deps installs Debian's slurmctld slurmd slurm-client munge and mpich)"
done

echo "slurm cluster test: building target/debug (tic-train and tic-eval with --features mpi)"
cargo build -q -p tic-shards -p tic-splits --bins
cargo build -q -p tic-train -p tic-eval --bins --features tic-train/mpi,tic-eval/mpi
echo "slurm cluster test: built in $SECONDS s"
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug
[[ $BIN == /* ]] || BIN=$ROOT/$BIN

W=$(mktemp -d "${TMPDIR:-/tmp}/tic-slurm.XXXXXX")
chmod 755 "$W"
export SLURM_CONF=$W/etc/slurm.conf
FAILURES=0
START=$SECONDS
teardown() {
    local rc=$?
    # Jobs first (their ranks), then the daemons this script started, by their pid files.
    scancel --full --quiet --user=root --partition=tictest 2>/dev/null || true
    scontrol shutdown >/dev/null 2>&1 || true
    for p in slurmd slurmctld; do
        [[ -f $W/run/$p.pid ]] && kill "$(cat "$W/run/$p.pid")" 2>/dev/null || true
    done
    [[ -S $W/munge/sock ]] && munged --stop --socket="$W/munge/sock" >/dev/null 2>&1 || true
    if [[ $rc != 0 || ${SLURM_KEEP:-0} == 1 ]]; then
        echo "slurm cluster test: logs and work folder kept: $W"
    else
        rm -rf "$W"
    fi
}
trap teardown EXIT
fail() {
    echo "FAIL: $*" >&2
    FAILURES=$((FAILURES + 1))
}
q() {
    "$@" >>"$W/setup.log" 2>&1 || {
        echo "slurm cluster test: setup command failed: $*" >&2
        tail -n 20 "$W/setup.log" >&2
        exit 1
    }
}

# ---- the cluster -------------------------------------------------------------------------------
mkdir -p "$W"/{etc,munge,state,spool,log,run}
chmod 700 "$W/munge"
head -c 1024 /dev/urandom >"$W/munge/munge.key"
chmod 400 "$W/munge/munge.key"
munged --force --key-file="$W/munge/munge.key" --socket="$W/munge/sock" \
    --pid-file="$W/munge/munged.pid" --seed-file="$W/munge/seed" --log-file="$W/log/munged.log"
read -r CTLD_PORT SLURMD_PORT < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
NODE=$(hostname -s)
cat >"$SLURM_CONF" <<EOF
ClusterName=tictest
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$W/munge/sock
StateSaveLocation=$W/state
SlurmdSpoolDir=$W/spool
SlurmctldPidFile=$W/run/slurmctld.pid
SlurmdPidFile=$W/run/slurmd.pid
SlurmctldLogFile=$W/log/slurmctld.log
SlurmdLogFile=$W/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
KillWait=30
MinJobAge=600
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=tictest Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -f "$SLURM_CONF" -i
slurmd -f "$SLURM_CONF"
for _ in $(seq 50); do
    [[ $(sinfo -h -o %t 2>/dev/null) == idle ]] && break
    sleep 0.2
done
[[ $(sinfo -h -o %t 2>/dev/null) == idle ]] || {
    echo "slurm cluster test: the node did not come up; logs:" >&2
    tail -n 20 "$W"/log/*.log >&2
    exit 1
}
srun --mpi=list 2>&1 | grep -qw pmi2 || skip "this Slurm has no pmi2 plugin (srun --mpi=list)"
echo "slurm cluster test: munged, slurmctld, slurmd up in $((SECONDS - START)) s (node $NODE, 2 CPUs, $W)"

# ---- inputs: a synthetic pool of 2 years, its yearly eval sets and a task list -----------------
cd "$W"
# shellcheck source=synth_inputs.sh
source "$ROOT/tests/synth_inputs.sh"
synth_inputs
q "$BIN/tic-reshard" -i synth/pool -o train -s $TRAIN_UIDS/$Y0.npy -q
echo "slurm cluster test: inputs ready in $((SECONDS - START)) s"

# ---- helpers -----------------------------------------------------------------------------------
# The tiny run: 40 steps of global batch 32 in 2 epochs, a resumable state every 5 steps.
STEPS=40
train_args() {
    echo --scale tiny --data_dir "$W/train" --output_dir "$W/runs" --exp_name "$1" \
        --batch_size 32 --train_num_samples $((32 * STEPS)) --num_checkpoints 2 \
        --checkpoint_every 5 --workers 1 --device cpu --seed 0 -q
}
strip_timing() { sed -E 's/,?"(samples_per_s|data_wait_s|step_s)":[^,}]*//g' "$1"; }
# submit NAME: submits the docs' batch script for run NAME on 2 tasks; prints the job id.
submit() {
    # shellcheck disable=SC2046 # train_args is a word list without spaces in its words
    TIC_TRAIN=$BIN/tic-train sbatch --parsable --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 \
        --gpus-per-node=0 --output="$W/$1.slurm.out" "$ROOT/examples/tic-train.sbatch" \
        $(train_args "$1")
}
job_state() { scontrol show job "$1" 2>/dev/null | sed -nE 's/.*JobState=([A-Z_]+).*/\1/p'; }
# wait_job ID: waits (at most 5 min) until job ID has ended; a job requeued by a preemption
# waits out Slurm's hold-off before it starts again (BeginTime), which is lifted here at once.
wait_job() {
    local t=$SECONDS s
    while ((SECONDS - t < 300)); do
        s=$(job_state "$1")
        case $s in
            COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY) echo "$s" && return ;;
            PENDING) scontrol show job "$1" | grep -q 'Reason=BeginTime' &&
                scontrol update JobId="$1" StartTime=now 2>/dev/null || true ;;
        esac
        sleep 0.5
    done
    echo "TIMEOUT_WAITING"
}
# wait_steps NAME N: waits until run NAME has logged N steps.
wait_steps() {
    local t=$SECONDS
    until [[ -f runs/$1/metrics.jsonl ]] && (($(wc -l <runs/$1/metrics.jsonl) >= $2)); do
        ((SECONDS - t < 180)) || { fail "run $1 did not reach step $2 in 180 s"; return 1; }
        sleep 0.1
    done
}
# same_run NAME REF: run NAME ended as REF did: every checkpoint byte-identical, metrics.jsonl
# equal line for line without its wall-clock fields (so every step is logged once).
same_run() {
    local f ok=1
    [[ -f runs/$1/compute.json ]] || { fail "$1: no compute.json (the run did not finish)"; return; }
    for f in runs/$2/checkpoints/*; do
        cmp -s "$f" "runs/$1/checkpoints/${f##*/}" || { fail "$1: ${f##*/} differs from $2's"; ok=0; }
    done
    diff <(ls runs/$2/checkpoints) <(ls runs/$1/checkpoints) >/dev/null ||
        { fail "$1: checkpoint files differ from $2's: $(ls runs/$1/checkpoints)"; ok=0; }
    cmp -s <(strip_timing runs/$2/metrics.jsonl) <(strip_timing runs/$1/metrics.jsonl) ||
        { fail "$1: metrics.jsonl differs from $2's:"$'\n'"$(diff <(strip_timing runs/$2/metrics.jsonl) <(strip_timing runs/$1/metrics.jsonl) | head -n 6)"; ok=0; }
    ((ok)) && echo "  $1: $(ls runs/$1/checkpoints | wc -l) checkpoint files byte-identical to $2's, $(wc -l <runs/$1/metrics.jsonl) metrics steps, each once"
    return 0
}
# ranks_of NAME: the pids of run NAME's tic-train processes (not srun's or the batch shell's).
ranks_of() { pgrep -f -- "^$BIN/tic-train .*--output_dir $W/runs --exp_name $1 " || true; }

# ---- 1. the batch job trains as mpirun -np 2 ---------------------------------------------------
T0=$SECONDS
# shellcheck disable=SC2046
q mpirun -np 2 "$BIN/tic-train" $(train_args mpirun)
echo "slurm cluster test: mpirun -np 2 reference: $((SECONDS - T0)) s"
T0=$SECONDS
J=$(submit job)
s=$(wait_job "$J")
[[ $s == COMPLETED ]] || fail "job $J (uninterrupted) ended $s: $(tail -n 5 "$W/job.slurm.out")"
echo "slurm cluster test: sbatch job $J: $s in $((SECONDS - T0)) s"
same_run job mpirun
grep -q "^Slurm job $J, restart 0, step 0, srun --mpi=pmi2$" runs/job/out.log ||
    fail "runs/job/out.log does not name Slurm job $J: $(head -n 3 runs/job/out.log)"

# ---- 2. scontrol requeue (preemption) and 3. the time-limit signal -----------------------------
preempt() { # NAME HOW...: stops the running job NAME after 12 steps with HOW, checks the result
    local name=$1 j s
    shift
    T0=$SECONDS
    j=$(submit "$name")
    wait_steps "$name" 12 || return 0
    "$@" "$j"
    s=$(wait_job "$j")
    [[ $s == COMPLETED ]] || fail "$name: job $j ended $s after '$*': $(tail -n 5 "$W/$name.slurm.out")"
    grep -qi "exited with exit code 75" "$W/$name.slurm.out" ||
        fail "$name: srun did not report exit 75 (preempted, resumable): $(grep -i exit "$W/$name.slurm.out")"
    grep -q "^Slurm job $j, restart 1," "runs/$name/out.log" ||
        fail "$name: job $j did not run again (no 'restart 1' in out.log)"
    # The restart resumes from the state saved at the preemption (step >= 12), not from the
    # last --checkpoint_every state (step 10): no finished step is lost.
    local at
    at=$(sed -nE 's/^resuming at step ([0-9]+)\/.*/\1/p' "runs/$name/out.log")
    [[ -n $at ]] && ((at >= 12)) || fail "$name: the restart did not resume from the preemption's state (resumed at step '${at}')"
    echo "slurm cluster test: '$*' after step 12 of job $j: ranks exit 75, restart resumes at step $at, $s, $((SECONDS - T0)) s"
    same_run "$name" mpirun
}
preempt requeued scontrol requeue
preempt timelimit scancel --batch --signal=USR1

# ---- 4. scancel leaves no rank behind ----------------------------------------------------------
J=$(submit cancelled)
wait_steps cancelled 5 || true
[[ -n $(ranks_of cancelled) ]] || fail "scancel: no tic-train rank of job $J was found running"
scancel "$J"
s=$(wait_job "$J")
[[ $s == CANCELLED ]] || fail "scancel: job $J ended $s, expected CANCELLED (not requeued)"
sleep 1
left=$(ranks_of cancelled)
[[ -z $left ]] || fail "scancel: tic-train ranks still running after job $J ended: $left"
grep -q "^preempted at step" runs/cancelled/out.log ||
    fail "scancel: the ranks did not save their state (no 'preempted at step' in out.log)"
echo "slurm cluster test: scancel of job $J: $s, no rank left"

# ---- 5. srun with a PMI flavour MPICH does not speak: the launch check names the right one ---
out=$(srun --ntasks=2 --mpi=none "$BIN/tic-train" $(train_args mismatch) 2>&1) &&
    fail "srun --mpi=none: tic-train started although its 2 tasks are MPI singletons"
grep -q "srun ran these tasks without PMI (no --mpi or --mpi=none.*this build's MPI (MPICH.*) needs \`srun --mpi=pmi2\`" <<<"$out" ||
    fail "srun --mpi=none: the launch check does not name --mpi=none and pmi2: $(head -n 3 <<<"$out")"
[[ ! -e runs/mismatch/metrics.jsonl ]] || fail "srun --mpi=none: the singletons trained"
echo "slurm cluster test: srun --mpi=none refused: $(grep -m1 -o 'SLURM_STEP_NUM_TASKS=2 but MPI sees 1 process(es)' <<<"$out")"

# ---- 6. a 2-task tic-eval ----------------------------------------------------------------------
EVAL_ARGS="--train_output_dir $W/runs/job --data_dir $W/data --tasklist $W/tasklist.yml --num_workers 1 --batch_size 16 -q"
# shellcheck disable=SC2086
q "$BIN/tic-eval" $EVAL_ARGS --output_dir "$W/eval1"
T0=$SECONDS
J=$(sbatch --parsable --ntasks=2 --cpus-per-task=1 --output="$W/eval.slurm.out" \
    --wrap "srun --mpi=pmi2 $BIN/tic-eval $EVAL_ARGS --output_dir $W/eval2")
s=$(wait_job "$J")
[[ $s == COMPLETED ]] || fail "tic-eval job $J ended $s: $(tail -n 5 "$W/eval.slurm.out")"
if cmp -s eval1/eval_results.jsonl eval2/eval_results.jsonl; then
    echo "slurm cluster test: 2-task tic-eval job $J: eval_results.jsonl ($(wc -l <eval2/eval_results.jsonl) tasks) identical to one process's, $((SECONDS - T0)) s"
else
    fail "tic-eval job $J: eval_results.jsonl differs from one process's"
fi

if ((FAILURES > 0)); then
    echo "slurm cluster test: $FAILURES check(s) failed (logs: $W/log, $W/*.slurm.out)" >&2
    exit 1
fi
echo "slurm cluster test: all checks held in $((SECONDS - START)) s"
