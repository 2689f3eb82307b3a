# Sourced by tests/crash_soak.sh and tests/slurm_cluster.sh: the small synthetic inputs both
# run their binaries on, made in the current folder as `make demo` makes them, so the two
# scripts test the same data. Needs BIN (the binaries' folder) and a function `q CMD...` that
# runs a setup command quietly and ends the script when it fails.
#
# synth_inputs: a pool of 2 years (Y0=2014, Y1=2015; 1,600 samples of 32 px in 4 shards) in
# synth/, its training uid lists in synth/uids/tic-datacomp_training_yearly_noeval (TRAIN_UIDS),
# the yearly retrieval eval sets under data/tic/datacomp/yearly/eval (EVAL_Y), the static
# classification set in data/wds_synth_static_test, and tasklist.yml with those 3 tasks.
# Eval tasks: the static classification set and two yearly retrieval sets. (DataCompNet sets are
# left out on purpose: their 1000 classes x 80 templates take ~15 s of text embedding per run.)
synth_inputs() {
    Y0=2014
    Y1=2015
    q "$BIN/tic-synth" --out synth --seed 0 --num-samples 1600 --num-shards 4 --first-year $Y0 \
        --num-years 2 --image-size 32 --static-samples 32 --eval-fraction 0.2 --quiet
    EVAL_Y=data/tic/datacomp/yearly/eval
    TRAIN_UIDS=synth/uids/tic-datacomp_training_yearly_noeval
    q "$BIN/tic-eval-uids" --output-path data/tic/datacomp/yearly --input-dir synth/uids --no-download -q
    q "$BIN/tic-reshard" -i synth/pool -o evalall -s $EVAL_Y/alluids.npy -q
    local y
    for y in $Y0 $Y1; do
        q "$BIN/tic-reshard" -i evalall -o $EVAL_Y/retrieval/$y -s $EVAL_Y/retrieval/$y.npy -q
        q "$BIN/tic-wds-convert" $EVAL_Y/retrieval/$y retrieval
    done
    cp -r synth/static data/wds_synth_static_test
    q "$BIN/tic-tasklist" --yaml-path tasklist.yml --eval-tasks retrieval/yearly \
        --data-dir data/tic/datacomp --data-depth 4 --base synth/static/tasklist.yml -q
    NTASKS=$(grep -c '^[a-z]' tasklist.yml)
    [[ $NTASKS == 3 ]] || { echo "$0: expected 3 tasks in tasklist.yml, got $NTASKS" >&2; exit 1; }
}
