# tic-rs: the TiC-CLIP pipeline as file targets.
#
#   make demo   — the whole pipeline on the embedded synthetic default, under $(DEMO_DIR)
#   make test   — formatting, lints, every test (what CI runs)
#
# Paths mirror the TiC-CLIP README (DATACOMP_PATH, TIC_DATACOMP_PATH, ...) and accept
# object-store URLs where the binaries do. Targets are files, so `make` reruns only what is
# missing or stale. See docs/architecture.md.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
# Keep intermediate files (UID copies, extraction markers): they are outputs users look at.
.SECONDARY:
MAKEFLAGS += --no-builtin-rules
.SECONDEXPANSION:

CARGO ?= cargo
PYTHON ?= python3
PROFILE ?= release
# What `make demo` builds first, and where its binaries are (demo-smoke: none, target/debug).
# The demo needs no object store, so it builds without the `remote` feature: the HTTP/TLS stack
# is ~20 % of a cold build, which on 2 cores decides whether the demo fits in 10 minutes.
DEMO_BUILD ?= demo-build
DEMO_PROFILE ?= demo
# Cargo's output folder: CARGO_TARGET_DIR when set (as cargo itself reads it), else target/.
TARGET_DIR := $(abspath $(or $(CARGO_TARGET_DIR),target))
DEMO_BIN ?= $(TARGET_DIR)/$(DEMO_PROFILE)
BIN ?= $(TARGET_DIR)/$(PROFILE)
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

# ---- the embedded synthetic default -------------------------------------------------------
DEMO_DIR ?= out/demo
SEED ?= 0
SYNTH_SAMPLES ?= 6000
SYNTH_SHARDS ?= 12
SYNTH_YEARS ?= 4
FIRST_YEAR ?= 2014
SYNTH_IMAGE ?= 64
# Samples of the static (time-independent) classification set, key synth_static; 0: none.
SYNTH_STATIC ?= 320
# Samples of each synthetic set for DataComp's special evaluators (FMoW, Dollar Street, GeoDE,
# FairFace; and, in hf_cache, Flickr- and MSCOCO-style retrieval images and ⌈N/8⌉ WinoGAViL
# instances: tic-synth --special-samples), evaluated with the static set; 0 (or SYNTH_STATIC=0): none.
SYNTH_SPECIAL ?= 140
# Share of each year held out for the retrieval and DataCompNet eval sets (half each).
SYNTH_EVAL_FRACTION ?= 0.2
YEARS ?= $(shell seq $(FIRST_YEAR) $$(( $(FIRST_YEAR) + $(SYNTH_YEARS) - 1 )))

empty :=
space := $(empty) $(empty)
comma := ,

# ---- paths of the TiC-CLIP README ---------------------------------------------------------
SYNTH_DIR ?= $(DEMO_DIR)/synth
DATACOMP_PATH ?= $(SYNTH_DIR)/pool
# Where the published UID files live (offline: the synthetic ones).
UID_SOURCE ?= $(SYNTH_DIR)/uids
TIC_DATACOMP_PATH ?= $(DEMO_DIR)/tic-datacomp
TIC_DATACOMP_Y_PATH ?= $(TIC_DATACOMP_PATH)/yearly
TIC_DATACOMP_M_PATH ?= $(TIC_DATACOMP_PATH)/monthly
DATA_Y_PATH ?= $(DEMO_DIR)/data/tic/datacomp/yearly
DATA_M_PATH ?= $(DEMO_DIR)/data/tic/datacomp/monthly
# Local copies of the training UID files ("downloaded" from UID_SOURCE).
UID_DIR ?= $(DEMO_DIR)/uids
YEAR ?= $(FIRST_YEAR)
YEARMONTH ?= $(YEAR)03
RESHARD_FLAGS ?= -q

# ---- which dataset the train/eval/metrics stages run on ------------------------------------
# DATASET=datacomp (default) | yfcc15m | redcaps. TiC-YFCC15M and TiC-RedCaps go through the same
# binaries: tic-yfcc-splits / tic-redcaps-splits cut the metadata into time groups, tic-make-tars
# packs each group's train split as a training split named by its time (2004-2008, …, or the
# year) and each test split as a retrieval eval set (tic-wds-convert); they have no class
# labels, so no DataCompNet tasks. Their runs, results, metrics and report live under
# $(DEMO_DIR)/$(DATASET)/.
DATASET ?= datacomp
YFCC_DIR ?= $(DEMO_DIR)/yfcc15m
# yfcc15m.csv and its images; the defaults are synthesized by tic-synth-captions.
YFCC_CSV ?= $(YFCC_DIR)/yfcc15m.csv
YFCC_IMAGES ?= $(YFCC_DIR)/images
YFCC_ROWS ?= 4000
REDCAPS_DIR ?= $(DEMO_DIR)/redcaps
# RedCaps' annotations/{subreddit}_{year}.json and images; the defaults are synthesized.
REDCAPS_ANNOTATIONS ?= $(REDCAPS_DIR)/annotations
REDCAPS_IMAGES ?= $(REDCAPS_DIR)/images
REDCAPS_ROWS ?= 4000
ifeq ($(DATASET),datacomp)
DS_DIR := $(DEMO_DIR)
else ifeq ($(DATASET),yfcc15m)
DS_DIR := $(YFCC_DIR)
DS_IMAGES := $(YFCC_IMAGES)
DS_LABEL := YFCC15M
# {group index of tic-yfcc-splits}:{time label of the split}
DS_GROUPS := 0:2004-2008 1:2009-2010 2:2011-2012 3:2013-2014
DS_SYNTHETIC := $(filter $(YFCC_DIR)/yfcc15m.csv,$(YFCC_CSV))
else ifeq ($(DATASET),redcaps)
DS_DIR := $(REDCAPS_DIR)
DS_IMAGES := $(REDCAPS_IMAGES)
DS_LABEL := RedCaps
DS_GROUPS := 2017:2017 2018:2018 2019:2019 2020:2020
DS_SYNTHETIC := $(filter $(REDCAPS_DIR)/annotations,$(REDCAPS_ANNOTATIONS))
else
$(error DATASET=$(DATASET): expected datacomp, yfcc15m or redcaps)
endif
# Test share of each time group (the originals: 1 %; the small synthetic default: 20 %).
SPLIT_TEST_SIZE ?= $(if $(DS_SYNTHETIC),0.2,0.01)
DS_SPLITS := $(foreach g,$(DS_GROUPS),$(lastword $(subst :, ,$(g))))
group_of = $(firstword $(subst :, ,$(filter %:$(1),$(DS_GROUPS))))
DS_TRAIN := $(DS_DIR)/yearly/train

BINARIES := tic-synth tic-reshard tic-stats tic-sizes tic-wds-convert tic-make-tars \
  tic-eval-uids tic-datacompnet-classes tic-tasklist tic-restricted-classes tic-yfcc-splits \
  tic-redcaps-splits tic-synth-captions tic-embed tic-metrics tic-train tic-eval tic-report tic-sweep \
  tic-aggregate tic-download tic-fuzz

.PHONY: house-rules thin-bins gpu-bundle gpu-dry-run bench-mkl all build build-mpi demo-build report-print install-bin deps test fmt-check clippy unit demo demo-seeds demo-paper demo-data demo-smoke data-year \
        data-month stats eval-sets tasklist yfcc redcaps data data-summary examples-check model-fixtures test-vit-b-32 train train-all eval eval-all metrics \
        report bench-reshard bench-download fuzz fuzz-smoke clean help pool

all: build

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

# ---- build and test -------------------------------------------------------------------------
build: ## Build every binary (release)
	$(CARGO) build --profile $(PROFILE) --workspace --bins

# Not the downloader and the fuzzer: the demo runs neither, and their HTTP and fuzzing stacks
# were 2 of a fresh clone's 7 build minutes.
DEMO_EXCLUDE ?= tic-download tic-fuzz
demo-build: ## The demo's binaries: local paths only (no `remote` feature), in target/demo
	$(CARGO) build --profile $(DEMO_PROFILE) --workspace $(foreach p,$(DEMO_EXCLUDE),--exclude $(p)) \
	  --bins --no-default-features

build-mpi: build ## As build, with tic-train and tic-eval able to run as MPI jobs (LAUNCH=)
	$(CARGO) build --profile $(PROFILE) -p tic-train -p tic-eval --bins --features tic-train/mpi,tic-eval/mpi

install-bin: build ## Copy the binaries into bin/
	@mkdir -p bin
	@for b in $(BINARIES); do cp -f $(BIN)/$$b bin/; done

# ---- the real pool (network) ----------------------------------------------------------------
# DataComp's download_upstream.py + img2dataset in Rust: `make pool SCALE=medium DATA=/data/pool
# SUBSET="uids/2014.npy uids/2015.npy"` (SUBSET optional: only those TiC years' rows). The
# pool's scale is DataComp's (small, medium, large, xlarge; default small), apart from the
# training SCALE (tic-train's scales, default tiny) that the rest of this Makefile uses.
POOL_SCALE = $(if $(filter command line environment,$(origin SCALE)),$(SCALE),small)
POOL_FLAGS ?=
# libjpeg-turbo's SIMD in tic-download (JPEG decode/encode ~3x faster, the same bytes) when nasm
# is there to assemble it; `make pool DL_SIMD=` builds without it.
DL_SIMD ?= $(if $(shell command -v nasm 2>/dev/null),simd,)
pool: build ## Download a DataComp pool (SCALE=, DATA=, SUBSET= uid .npy files, POOL_FLAGS=)
	@[ -n "$(DATA)" ] || { echo "make pool: set DATA=folder (metadata/ and shards/ go there)"; exit 2; }
	$(if $(DL_SIMD),$(CARGO) build --profile $(PROFILE) -p tic-download --bin tic-download --features simd)
	$(BIN)/tic-download --scale $(POOL_SCALE) --data_dir $(DATA) $(foreach s,$(SUBSET),--subset $(s)) $(POOL_FLAGS)

WORDNET_DIR ?= /usr/share/wordnet

deps: ## Install what the tests need (Rust components, a C compiler, MPICH + libclang, Slurm + munge, moto S3 server, tensorboard + wandb, WordNet 3.0)
	@command -v rustfmt >/dev/null && command -v cargo-clippy >/dev/null || rustup component add rustfmt clippy
	@command -v cc >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev; }
	@# MPI for data-parallel tic-train (the `mpi` feature: rsmpi needs mpicc and libclang to build).
	@command -v mpicc >/dev/null && command -v mpirun >/dev/null && ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mpich libmpich-dev libclang-dev; }
	@# Slurm 22.05 + munge for tests/slurm_cluster.sh (a one-node cluster; the pmi2 and pmix plugins
	@# come with slurm-wlm-basic-plugins); ~21 s, 11 packages with --no-install-recommends.
	@command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null && command -v munged >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    slurmctld slurmd slurm-client slurm-wlm-basic-plugins munge libpmix2; }
	@$(PYTHON) -c 'import moto.server, flask, flask_cors' 2>/dev/null || \
	  { $(PYTHON) -m pip install --quiet 'moto[server]' && (pyenv rehash 2>/dev/null || true); }
	@# tic-train's --report_to tests read the event files back with the real tensorboard package
	@# and upload the W&B offline runs with the real `wandb sync` (to a local stand-in server).
	@$(PYTHON) -c 'import tensorboard, wandb, yaml' 2>/dev/null || \
	  { $(PYTHON) -m pip install --quiet tensorboard wandb pyyaml && (pyenv rehash 2>/dev/null || true); }
	@[ -f $(WORDNET_DIR)/data.noun ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wordnet-base; }

fmt-check:
	$(CARGO) fmt --all --check

# The house rules of docs/architecture.md that clippy does not check: binaries are thin mains
# over their crate's library (at most 60 lines), and no crate's modules use each other in a cycle.
house-rules: thin-bins
	$(PYTHON) tests/module_cycles.py

thin-bins:
	@fat=$$(wc -l crates/*/src/bin/*.rs | awk '$$2 != "total" && $$1 > 60'); \
	  [ -z "$$fat" ] || { printf 'binaries over 60 lines (move the logic into the library):\n%s\n' "$$fat"; exit 1; }

clippy: house-rules
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --workspace --bins --lib --no-default-features -- -D warnings -D clippy::too_many_lines
	$(CARGO) clippy -p tic-dist -p tic-train -p tic-eval --all-targets --features tic-train/mpi,tic-eval/mpi -- -D warnings
	$(CARGO) clippy -p tic-kernels --all-targets --features kernel-emu -- -D warnings

# The MPI tests (mpirun, MPICH) run on binaries built with the `mpi` feature; they go last
# because they rebuild tic-train and tic-eval with it.
unit:
	$(CARGO) test --workspace
	@# The CUDA kernels of the fused ops (crates/tic-kernels/kernels/fused.cu) emulated on the CPU (no GPU, no nvcc).
	$(CARGO) test -p tic-kernels --features kernel-emu --test cuda_kernels_emulated
	bash tests/crash_soak.sh
	$(CARGO) test -p tic-dist -p tic-train -p tic-eval --features tic-train/mpi,tic-eval/mpi
	@# The docs' Slurm recipe under a real one-node Slurm (munged, slurmctld, slurmd; needs root).
	bash tests/slurm_cluster.sh

test: deps fmt-check clippy unit fuzz-smoke examples-check demo-smoke ## Formatting, lints, every test and a shortened demo (CI's command)

# The example scripts parse, and their Makefile invocations are valid (dry runs on fake paths).
examples-check:
	for f in examples/*.sh examples/*.sbatch; do bash -n $$f; done
	$(PYTHON) -m py_compile examples/*.py
	DRY_RUN=1 DATACOMP_PATH=/nonexistent/pool UID_SOURCE=/nonexistent/uids OUT=target/examples-check \
	  bash examples/tic-datacomp.sh > target/examples-check.datacomp.txt
	grep -q 'tic-reshard -i /nonexistent/pool' target/examples-check.datacomp.txt
	! grep -q 'tic-synth ' target/examples-check.datacomp.txt
	@mkdir -p target/examples-check && touch target/examples-check/yfcc15m.csv
	DRY_RUN=1 YFCC_CSV=target/examples-check/yfcc15m.csv YFCC_IMAGES=/nonexistent/images OUT=target/examples-check \
	  bash examples/tic-yfcc15m.sh > target/examples-check.yfcc.txt
	grep -q 'tic-yfcc-splits --input target/examples-check/yfcc15m.csv' target/examples-check.yfcc.txt
	grep -q 'tic-train .*--data_dir .*2004-2008::.*2009-2010' target/examples-check.yfcc.txt

# A shortened demo on the binaries `cargo test` just built: the whole chain on a small pool
# (3 years, 5 strategies, short runs); tic-report --check fails on a missing or insane number.
SMOKE_DIR ?= target/demo-smoke
demo-smoke: ## The whole pipeline, shortened, with tic-report --check (part of make test)
	$(CARGO) build --workspace --bins
	rm -rf $(SMOKE_DIR)
	$(MAKE) --no-print-directory demo DEMO_DIR=$(SMOKE_DIR) DEMO_BIN=$(TARGET_DIR)/debug DEMO_BUILD= \
	  SYNTH_SAMPLES=1500 SYNTH_SHARDS=4 SYNTH_YEARS=3 SYNTH_STATIC=48 SYNTH_SPECIAL=28 \
	  DEMO_BUDGET=256 REPORT_FLAGS=--check
	test -s $(SMOKE_DIR)/report.md
	for ds in yfcc15m redcaps; do \
	  $(MAKE) --no-print-directory demo DATASET=$$ds DEMO_DIR=$(SMOKE_DIR) DEMO_BIN=$(TARGET_DIR)/debug DEMO_BUILD= \
	    YFCC_ROWS=1500 REDCAPS_ROWS=1500 STRATEGIES="sequential cumulative-all oracle" \
	    DEMO_BUDGET=256 REPORT_FLAGS=--check && \
	  test -s $(SMOKE_DIR)/$$ds/report.md; done

# ---- data: synthetic pool, UID files, time splits -------------------------------------------
$(SYNTH_DIR)/synth.json:
	$(BIN)/tic-synth --out $(SYNTH_DIR) --seed $(SEED) --num-samples $(SYNTH_SAMPLES) \
	  --num-shards $(SYNTH_SHARDS) --first-year $(FIRST_YEAR) --num-years $(SYNTH_YEARS) \
	  --image-size $(SYNTH_IMAGE) --static-samples $(SYNTH_STATIC) \
	  $(if $(SPECIAL_FOLDERS),--special-samples $(SYNTH_SPECIAL)) \
	  --eval-fraction $(SYNTH_EVAL_FRACTION) --quiet

# The synthetic pool is made only when the UID files come from it (real data: UID_SOURCE
# points at Apple's release and DATACOMP_PATH at the DataComp pool).
SYNTH_POOL := $(if $(filter $(SYNTH_DIR)/uids,$(UID_SOURCE)),$(SYNTH_DIR)/synth.json)

# "Download" the published UID files (offline: copy them from UID_SOURCE).
$(UID_DIR)/yearly/train/%.npy: | $(SYNTH_POOL)
	@mkdir -p $(@D)
	cp $(UID_SOURCE)/tic-datacomp_training_yearly_noeval/$*.npy $@

$(UID_DIR)/monthly/traineval/%/.extracted: | $(SYNTH_POOL)
	@mkdir -p $(UID_DIR)/monthly/traineval
	tar -xf $(UID_SOURCE)/tic-datacomp_training_monthly/$*.tar -C $(UID_DIR)/monthly/traineval/
	@touch $@

# Yearly training splits: reshard the pool with each year's uids.
$(TIC_DATACOMP_Y_PATH)/train/%/meta.json: $(UID_DIR)/yearly/train/%.npy
	$(BIN)/tic-reshard -i $(DATACOMP_PATH) -o $(@D) -s $< $(RESHARD_FLAGS)

# Monthly training splits: reshard the year's training split with the month's uids.
$(TIC_DATACOMP_M_PATH)/train/%/meta.json: $(TIC_DATACOMP_Y_PATH)/train/$$(shell echo $$* | cut -c1-4)/meta.json \
    $(UID_DIR)/monthly/traineval/$$(shell echo $$* | cut -c1-4)/.extracted
	$(BIN)/tic-reshard -i $(TIC_DATACOMP_Y_PATH)/train/$(shell echo $* | cut -c1-4) -o $(@D) \
	  -s $(UID_DIR)/monthly/traineval/$(shell echo $* | cut -c1-4)/$*.npy $(RESHARD_FLAGS)

data-year: $(TIC_DATACOMP_Y_PATH)/train/$(YEAR)/meta.json ## One yearly split (YEAR=2014)
	$(BIN)/tic-stats --url $(TIC_DATACOMP_Y_PATH)/train -q
	$(BIN)/tic-sizes --url $(TIC_DATACOMP_Y_PATH)/train

data-month: $(TIC_DATACOMP_M_PATH)/train/$(YEARMONTH)/meta.json ## One monthly split (YEARMONTH=201403)
	$(BIN)/tic-stats --url $(TIC_DATACOMP_M_PATH)/train -q
	$(BIN)/tic-sizes --url $(TIC_DATACOMP_M_PATH)/train

stats: ## _stats.json and sizes.json for every yearly and monthly split
	$(BIN)/tic-stats --url $(TIC_DATACOMP_Y_PATH)/train -q
	$(BIN)/tic-sizes --url $(TIC_DATACOMP_Y_PATH)/train
	@if [ -d $(TIC_DATACOMP_M_PATH)/train ]; then $(BIN)/tic-stats --url $(TIC_DATACOMP_M_PATH)/train -q && \
	  $(BIN)/tic-sizes --url $(TIC_DATACOMP_M_PATH)/train; fi

# ---- evaluation sets (retrieval and DataCompNet, yearly and monthly) -------------------------
TASKLIST ?= $(DS_DIR)/tasklist.yml
# Task families in the task list (tic-tasklist --eval-tasks). The monthly sets are built by
# eval-sets too; add retrieval/monthly,datacompnet/monthly to evaluate on them.
EVAL_TASKS ?= retrieval/yearly$(if $(filter datacomp,$(DATASET)),$(comma)datacompnet/yearly)
# Root of the evaluation sets (tic-eval --data_dir).
EVAL_DATA_DIR ?= $(DEMO_DIR)/data
# Retrieval eval sets of TiC-YFCC15M / TiC-RedCaps (one per time split).
DS_EVAL := $(EVAL_DATA_DIR)/tic/$(DATASET)/yearly/eval/retrieval
EVAL_Y := $(DATA_Y_PATH)/eval
EVAL_M := $(DATA_M_PATH)/eval
STATIC_SET := $(if $(filter-out 0,$(SYNTH_STATIC)),$(EVAL_DATA_DIR)/wds_synth_static_test/test/nshards.txt)
# tic-synth's sets for DataComp's special evaluators, under DataComp's folder names (with the
# static set only: the static task list lists them).
SPECIAL_FOLDERS := $(if $(and $(STATIC_SET),$(filter-out 0,$(SYNTH_SPECIAL))),wds_wilds-fmow_test wds_dollar_street_test wds_geode_test wds_fairface_test)
SPECIAL_SETS := $(foreach f,$(SPECIAL_FOLDERS),$(EVAL_DATA_DIR)/$(f)/test/nshards.txt)
# tic-synth's stand-ins for DataComp's Hugging Face sets (Flickr and WinoGAViL in the hf_cache
# layout of DataComp's pinned `datasets` 2.8, MSCOCO in the current `datasets` layout, sharded),
# written with the special sets; the target is the 2.8 folder, the whole hf_cache is copied.
HF_CACHE_SET := $(if $(SPECIAL_FOLDERS),$(EVAL_DATA_DIR)/hf_cache/nlphuji___parquet)

$(EVAL_Y)/alluids.npy: | $(SYNTH_POOL)
	$(BIN)/tic-eval-uids --output-path $(DATA_Y_PATH) --input-dir $(UID_SOURCE) --no-download -q

$(EVAL_Y)/datacompnet/classnames.txt: | $(SYNTH_POOL)
	$(BIN)/tic-datacompnet-classes --output-path $(EVAL_Y)/datacompnet --input-dir $(UID_SOURCE) --no-download -q

# Every eval sample of the pool, once (README: "Create a webdataset with all evaluation data").
$(TIC_DATACOMP_Y_PATH)/eval/all/meta.json: $(EVAL_Y)/alluids.npy
	$(BIN)/tic-reshard -i $(DATACOMP_PATH) -o $(@D) -s $< $(RESHARD_FLAGS)

$(EVAL_Y)/retrieval/%/nshards.txt: $(TIC_DATACOMP_Y_PATH)/eval/all/meta.json
	$(BIN)/tic-reshard -i $(TIC_DATACOMP_Y_PATH)/eval/all -o $(@D) -s $(EVAL_Y)/retrieval/$*.npy $(RESHARD_FLAGS)
	$(BIN)/tic-wds-convert $(@D) retrieval

$(EVAL_Y)/datacompnet/%/nshards.txt: $(TIC_DATACOMP_Y_PATH)/eval/all/meta.json $(EVAL_Y)/datacompnet/classnames.txt
	$(BIN)/tic-reshard -i $(TIC_DATACOMP_Y_PATH)/eval/all -o $(@D) -s $(EVAL_Y)/datacompnet/$*.npy \
	  -c $(EVAL_Y)/datacompnet/uid2classid/$*.pkl $(RESHARD_FLAGS)
	$(BIN)/tic-wds-convert $(@D) classification

# Monthly eval sets: the year's (converted) eval set cut with the month's uids.
$(EVAL_M)/retrieval/%/nshards.txt: $(EVAL_Y)/retrieval/$$(shell echo $$* | cut -c1-4)/nshards.txt \
    $(UID_DIR)/monthly/traineval/$$(shell echo $$* | cut -c1-4)/.extracted
	$(BIN)/tic-reshard -i $(EVAL_Y)/retrieval/$(shell echo $* | cut -c1-4) -o $(@D) \
	  -s $(UID_DIR)/monthly/traineval/$(shell echo $* | cut -c1-4)/$*.npy \
	  --shard-format '{}.tar' --shard-stats-format '{}.json' $(RESHARD_FLAGS)
	$(BIN)/tic-wds-convert $(@D) retrieval

$(EVAL_M)/datacompnet/%/nshards.txt: $(EVAL_Y)/datacompnet/$$(shell echo $$* | cut -c1-4)/nshards.txt \
    $(UID_DIR)/monthly/traineval/$$(shell echo $$* | cut -c1-4)/.extracted
	$(BIN)/tic-reshard -i $(EVAL_Y)/datacompnet/$(shell echo $* | cut -c1-4) -o $(@D) \
	  -s $(UID_DIR)/monthly/traineval/$(shell echo $* | cut -c1-4)/$*.npy \
	  -c $(EVAL_Y)/datacompnet/uid2classid/$(shell echo $* | cut -c1-4).pkl \
	  --shard-format '{}.tar' --shard-stats-format '{}.json' $(RESHARD_FLAGS)
	$(BIN)/tic-wds-convert $(@D) classification

EVAL_SETS := $(foreach y,$(YEARS),$(EVAL_Y)/retrieval/$(y)/nshards.txt $(EVAL_Y)/datacompnet/$(y)/nshards.txt) \
  $(EVAL_M)/retrieval/$(YEARMONTH)/nshards.txt $(EVAL_M)/datacompnet/$(YEARMONTH)/nshards.txt

# The static set tic-synth wrote (the demo's stand-in for ImageNet and the other fixed tasks).
$(EVAL_DATA_DIR)/wds_synth_static_test/test/nshards.txt: | $(SYNTH_DIR)/synth.json
	rm -rf $(EVAL_DATA_DIR)/wds_synth_static_test.tmp
	@mkdir -p $(EVAL_DATA_DIR)
	cp -r $(SYNTH_DIR)/static $(EVAL_DATA_DIR)/wds_synth_static_test.tmp
	rm -rf $(EVAL_DATA_DIR)/wds_synth_static_test
	mv $(EVAL_DATA_DIR)/wds_synth_static_test.tmp $(EVAL_DATA_DIR)/wds_synth_static_test

# The special sets tic-synth wrote, copied as DataComp's eval download holds them.
$(SPECIAL_SETS): $(EVAL_DATA_DIR)/%/test/nshards.txt: | $(SYNTH_DIR)/synth.json
	@test -d $(SYNTH_DIR)/special/$* || { echo "$(SYNTH_DIR)/special/$* is missing: that pool was made \
	  without --special-samples; remove $(SYNTH_DIR) (or give SYNTH_SPECIAL=0)" >&2; exit 1; }
	rm -rf $(EVAL_DATA_DIR)/$*.tmp
	@mkdir -p $(EVAL_DATA_DIR)
	cp -r $(SYNTH_DIR)/special/$* $(EVAL_DATA_DIR)/$*.tmp
	rm -rf $(EVAL_DATA_DIR)/$*
	mv $(EVAL_DATA_DIR)/$*.tmp $(EVAL_DATA_DIR)/$*

# The hf_cache tic-synth wrote, copied where DataComp's download_evalsets.py leaves it.
$(EVAL_DATA_DIR)/hf_cache/nlphuji___parquet: | $(SYNTH_DIR)/synth.json
	@test -d $(SYNTH_DIR)/special/hf_cache || { echo "$(SYNTH_DIR)/special/hf_cache is missing: that pool \
	  was made by an older tic-synth; remove $(SYNTH_DIR) (or give SYNTH_SPECIAL=0)" >&2; exit 1; }
	rm -rf $(EVAL_DATA_DIR)/hf_cache.tmp
	@mkdir -p $(EVAL_DATA_DIR)
	cp -r $(SYNTH_DIR)/special/hf_cache $(EVAL_DATA_DIR)/hf_cache.tmp
	rm -rf $(EVAL_DATA_DIR)/hf_cache
	mv $(EVAL_DATA_DIR)/hf_cache.tmp $(EVAL_DATA_DIR)/hf_cache

eval-sets: $(EVAL_SETS) $(STATIC_SET) $(SPECIAL_SETS) $(HF_CACHE_SET) ## Retrieval, DataCompNet, static and special eval sets (CLIP_benchmark layout)

ifeq ($(DATASET),datacomp)
TASK_SETS := $(EVAL_SETS) $(STATIC_SET) $(SPECIAL_SETS) $(HF_CACHE_SET)
TASKLIST_FLAGS := $(if $(STATIC_SET),--base $(SYNTH_DIR)/static/tasklist.yml)
else
TASK_SETS := $(foreach l,$(DS_SPLITS),$(DS_EVAL)/$(l)/nshards.txt)
TASKLIST_FLAGS := --dataset $(DATASET) --dataset-label $(DS_LABEL)
endif

$(TASKLIST): $(TASK_SETS)
	$(BIN)/tic-tasklist --yaml-path $@ --eval-tasks $(EVAL_TASKS) \
	  --data-dir $(EVAL_DATA_DIR)/tic/$(DATASET) --data-depth 4 $(TASKLIST_FLAGS) -q

tasklist: $(TASKLIST) ## tasklist.yml for the eval sets that exist (of DATASET)

# ---- TiC-YFCC15M and TiC-RedCaps through the same tools -----------------------------------------
# Synthetic raw data, made only where the default paths are used.
$(YFCC_DIR)/yfcc15m.csv:
	$(BIN)/tic-synth-captions yfcc --out $(YFCC_DIR) --seed $(SEED) --rows $(YFCC_ROWS) --images -q

$(REDCAPS_DIR)/annotations/.synth:
	$(BIN)/tic-synth-captions redcaps --out $(REDCAPS_DIR) --seed $(SEED) --rows $(REDCAPS_ROWS) --images -q
	@touch $@

$(YFCC_DIR)/splits/.done: $(YFCC_CSV)
	$(BIN)/tic-yfcc-splits --input $< --output-dir $(@D) --seed $(SEED) --test-size $(SPLIT_TEST_SIZE) -q
	@touch $@

$(REDCAPS_DIR)/splits/.done: $(if $(filter $(REDCAPS_DIR)/annotations,$(REDCAPS_ANNOTATIONS)),$(REDCAPS_DIR)/annotations/.synth)
	$(BIN)/tic-redcaps-splits --annotations-dir $(REDCAPS_ANNOTATIONS) --output-dir $(@D) \
	  --seed $(SEED) --test-size $(SPLIT_TEST_SIZE) -q
	@touch $@

# $(call pack_split,train|test): the time group $*'s split CSV packed into the target's folder.
pack_split = rm -rf $(@D) && $(BIN)/tic-make-tars --input $(DS_DIR)/splits/$(1)_batch_$(call group_of,$*).csv \
  --image-dir $(DS_IMAGES) --output-dir $(@D) --datacomp-compat -q

# A time group's train split packed as the training split named by its time; sizes.json, the
# last file tic-make-tars writes, marks it finished.
$(DS_TRAIN)/%/sizes.json: $(DS_DIR)/splits/.done
	$(call pack_split,train)

# Its test split as a CLIP_benchmark retrieval set at the path the task key names.
$(DS_EVAL)/%/nshards.txt: $(DS_DIR)/splits/.done
	$(call pack_split,test)
	$(BIN)/tic-wds-convert $(@D) retrieval

yfcc: ## TiC-YFCC15M (synthetic by default): training splits, eval sets, task list
	$(MAKE) --no-print-directory data DATASET=yfcc15m
redcaps: ## TiC-RedCaps (synthetic by default): training splits, eval sets, task list
	$(MAKE) --no-print-directory data DATASET=redcaps

ifeq ($(DATASET),datacomp)
data: $(foreach y,$(YEARS),$(TIC_DATACOMP_Y_PATH)/train/$(y)/meta.json) \
    $(TIC_DATACOMP_M_PATH)/train/$(YEARMONTH)/meta.json $(TASKLIST) ## Every split and eval set of DATASET, and its task list
	$(MAKE) --no-print-directory stats
else
data: $(foreach l,$(DS_SPLITS),$(DS_TRAIN)/$(l)/sizes.json) $(TASKLIST)
endif
demo-data: data

# ---- training: one run per (strategy, time step) ----------------------------------------------
# Runs are {RUNS_DIR}/{strategy}_{step}, a step being named by its last training split. Step 0 is
# the same for every strategy (random init, the first step's data, one step's budget), so it is
# trained once as init_{step} and each strategy's step-0 run is a symlink to it. Warm-start
# strategies depend on their previous step's run; tic-train finds its checkpoint by name.
SCALE ?= tiny
STRATEGIES ?= sequential cumulative-all cumulative-exp restart oracle
STRATEGY ?= sequential
# Training splits, oldest first (folders under TRAIN_DATA); the first FIRST_STEP_SPLITS of them
# form time step 0 (TiC-DataComp: 2014 2015 2016 -> 3).
TRAIN_SPLITS ?= $(if $(DS_SPLITS),$(DS_SPLITS),$(YEARS))
FIRST_STEP_SPLITS ?= 1
TRAIN_DATA ?= $(if $(DS_SPLITS),$(DS_TRAIN),$(TIC_DATACOMP_Y_PATH)/train)
# The file that marks a finished training split: tic-reshard's meta.json, tic-make-tars' sizes.json.
SPLIT_MARKER ?= $(if $(DS_SPLITS),sizes.json,meta.json)
RUNS_DIR ?= $(DS_DIR)/runs
RESULTS_DIR ?= $(DS_DIR)/results
METRICS_DIR ?= $(DS_DIR)/metrics
REPORT ?= $(DS_DIR)/report.md
TRAIN_FLAGS ?= --workers $(JOBS) -q
# A zero-shot classification set evaluated at every epoch end (the TiC README's
# IMAGENET_VAL_PATH; any CLIP_benchmark classification set, e.g. the demo's static set
# $(EVAL_DATA_DIR)/wds_synth_static_test). A local folder (tic-train reads it with local file
# APIs, like run folders). Empty: none.
IMAGENET_VAL_PATH ?=
EVAL_FLAGS ?= --num_workers $(JOBS) -q
# Threads per tic-train / tic-eval process (RAYON_NUM_THREADS); empty: all cores.
PROC_THREADS ?=
# A launcher put in front of tic-train and tic-eval, for data parallelism (binaries built with
# `make build-mpi`): LAUNCH="mpirun -np 8", or "srun --mpi=pmi2" inside an sbatch allocation
# (pmi2 for MPICH, as `make deps` installs; "srun --mpi=pmix" for an Open MPI built with PMIx).
# Empty: one process. See docs/distributed.md.
LAUNCH ?=
# The demo runs JOBS trainings/evaluations side by side, one thread each: a tiny CLIP step is
# as fast on one thread as on two, so this doubles throughput on 2 cores.
DEMO_JOBS ?= $(JOBS)
# The demo's training regime on top of `--scale tiny` (issue 17; docs/results.md "The demo's
# regime"): DEMO_BUDGET samples per time step and DEMO_REGIME's optimizer settings. At the
# tiny scale's own 120 steps × 32 some seeds' first run plateaus (loss ≈ 2, recall@1 ≈ 8 %).
DEMO_BUDGET ?= 7680
DEMO_REGIME ?=
DEMO_RUN_FLAGS ?= --workers 1 --num_checkpoints 1 -q
DEMO_TRAIN_FLAGS ?= --train_num_samples $(DEMO_BUDGET) $(DEMO_REGIME) $(DEMO_RUN_FLAGS)
DEMO_EVAL_FLAGS ?= --num_workers 1 --batch_size 256 -q
with_threads = $(if $(PROC_THREADS),RAYON_NUM_THREADS=$(PROC_THREADS) )
METRICS_FLAGS ?=
REPORT_FLAGS ?=
WARM_STARTS := sequential cumulative-all cumulative-exp cumulative-equal lwf patching

STEPS := $(wordlist $(FIRST_STEP_SPLITS),$(words $(TRAIN_SPLITS)),$(TRAIN_SPLITS))
FIRST_STEP := $(firstword $(STEPS))
# $(call run_step,S_Y) = Y; $(call run_strategy,S_Y) = S.
run_step = $(lastword $(subst _, ,$(1)))
run_strategy = $(patsubst %_$(call run_step,$(1)),%,$(1))
# Splits are ordered as listed (labels may be years, months or ranges such as 2004-2008).
splits_upto = $(shell echo $(TRAIN_SPLITS) | tr ' ' '\n' | sed '/^$(1)$$/q')
prev_step = $(shell echo $(STEPS) | tr ' ' '\n' | sed -n '/^$(1)$$/q;p' | tail -n 1)
train_inputs = $(subst $(space),::,$(foreach s,$(call splits_upto,$(1)),$(TRAIN_DATA)/$(s)))
# Local splits are file prerequisites; object-store URLs are taken as they are.
split_files = $(if $(findstring ://,$(TRAIN_DATA)),,$(foreach s,$(call splits_upto,$(1)),$(TRAIN_DATA)/$(s)/$(SPLIT_MARKER)))
is_shared_first = $(and $(filter $(FIRST_STEP),$(call run_step,$(1))),$(filter-out init,$(call run_strategy,$(1))))
run_prereqs = $(if $(call is_shared_first,$(1)),$(RUNS_DIR)/init_$(FIRST_STEP)/compute.json,\
  $(call split_files,$(call run_step,$(1))) \
  $(if $(and $(filter $(WARM_STARTS),$(call run_strategy,$(1))),$(call prev_step,$(call run_step,$(1)))),\
    $(RUNS_DIR)/$(call run_strategy,$(1))_$(call prev_step,$(call run_step,$(1)))/compute.json))

ALL_STRATEGIES := sequential cumulative-all cumulative-exp cumulative-equal restart oracle lwf patching
RUN_FILES := $(foreach s,init $(ALL_STRATEGIES),$(foreach y,$(STEPS),$(RUNS_DIR)/$(s)_$(y)/compute.json))

# compute.json is the last file tic-train writes: its presence means the run finished.
$(RUN_FILES): $(RUNS_DIR)/%/compute.json: $$(call run_prereqs,$$*)
	@mkdir -p $(RUNS_DIR)
	$(if $(call is_shared_first,$*),rm -rf $(RUNS_DIR)/$* && ln -s init_$(FIRST_STEP) $(RUNS_DIR)/$*,\
	  $(with_threads)$(LAUNCH) $(BIN)/tic-train --scale $(SCALE) --strategy $(if $(filter init,$(call run_strategy,$*)),restart,$(call run_strategy,$*)) \
	    --data_dir $(call train_inputs,$(call run_step,$*)) --first_step_splits $(FIRST_STEP_SPLITS) \
	    --output_dir $(RUNS_DIR) --exp_name $* --seed $(SEED) $(if $(filter tic_%,$(SCALE)),--grad_checkpointing) \
	    $(if $(IMAGENET_VAL_PATH),--imagenet_val $(IMAGENET_VAL_PATH)) $(TRAIN_FLAGS))

train: $(RUNS_DIR)/$(STRATEGY)_$(YEAR)/compute.json ## One run (STRATEGY=cumulative-all YEAR=2016), with the runs it warm-starts from

train-all: $(foreach s,$(STRATEGIES),$(foreach y,$(STEPS),$(RUNS_DIR)/$(s)_$(y)/compute.json)) ## Every strategy at every step

# ---- evaluation of every checkpoint, metrics, report ----------------------------------------
# {RESULTS_DIR}/{strategy}/{step}/: eval_results.jsonl from tic-eval plus the run's compute.json;
# eval.done marks a finished evaluation (tic-eval itself resumes an interrupted one).
is_shared_eval = $(and $(filter $(FIRST_STEP),$(word 2,$(subst /, ,$(1)))),$(filter-out init,$(word 1,$(subst /, ,$(1)))))
eval_prereqs = $(if $(call is_shared_eval,$(1)),$(RESULTS_DIR)/init/$(FIRST_STEP)/eval.done,\
  $(RUNS_DIR)/$(word 1,$(subst /, ,$(1)))_$(word 2,$(subst /, ,$(1)))/compute.json $(TASKLIST))

EVAL_FILES := $(foreach s,init $(ALL_STRATEGIES),$(foreach y,$(STEPS),$(RESULTS_DIR)/$(s)/$(y)/eval.done))

$(EVAL_FILES): $(RESULTS_DIR)/%/eval.done: $$(call eval_prereqs,$$*)
	$(if $(call is_shared_eval,$*),\
	  mkdir -p $(dir $(RESULTS_DIR)/$*) && rm -rf $(RESULTS_DIR)/$* && ln -s ../init/$(FIRST_STEP) $(RESULTS_DIR)/$*,\
	  mkdir -p $(@D) && \
	  $(with_threads)$(LAUNCH) $(BIN)/tic-eval --train_output_dir $(RUNS_DIR)/$(subst /,_,$*) --output_dir $(@D) \
	    --data_dir $(EVAL_DATA_DIR) --tasklist $(TASKLIST) $(EVAL_FLAGS) > $(@D)/tic-eval.md && \
	  cp $(RUNS_DIR)/$(subst /,_,$*)/compute.json $(@D)/compute.json && touch $@)

EVALS := $(foreach s,$(STRATEGIES),$(foreach y,$(STEPS),$(RESULTS_DIR)/$(s)/$(y)/eval.done))

eval: $(RESULTS_DIR)/$(STRATEGY)/$(YEAR)/eval.done ## Evaluate one run (STRATEGY=, YEAR=) on every task of TASKLIST

eval-all: $(EVALS) ## Evaluate every run

$(METRICS_DIR)/report.json: $(EVALS)
	@mkdir -p $(METRICS_DIR)
	$(BIN)/tic-metrics $(foreach s,$(STRATEGIES),--runs $(s)=$(RESULTS_DIR)/$(s)) \
	  --output-dir $(METRICS_DIR) $(METRICS_FLAGS) > $(METRICS_DIR)/tic-metrics.md

metrics: $(METRICS_DIR)/report.json ## T×T matrices, ID/backward/forward transfer, plots

REPORT_CMD = $(BIN)/tic-report --metrics $(METRICS_DIR) --runs-dir $(RUNS_DIR) \
  $(if $(and $(filter datacomp,$(DATASET)),$(wildcard $(SYNTH_DIR)/synth.json)),--synth $(SYNTH_DIR)/synth.json) --output $(REPORT) $(REPORT_FLAGS)

$(REPORT): $(METRICS_DIR)/report.json
	$(REPORT_CMD) >/dev/null

report: $(REPORT) ## report.md: method x {ID, backward, forward, static, compute}, findings, plots

# ---- the demo -----------------------------------------------------------------------------
demo: $(DEMO_BUILD) ## The whole pipeline on the synthetic default, under DEMO_DIR
	$(MAKE) --no-print-directory -j$(DEMO_JOBS) demo-data BIN=$(DEMO_BIN)
	$(MAKE) --no-print-directory -j$(DEMO_JOBS) report BIN=$(DEMO_BIN) PROC_THREADS=1 \
	  TRAIN_FLAGS="$(DEMO_TRAIN_FLAGS)" EVAL_FLAGS="$(DEMO_EVAL_FLAGS)"
	@echo
	@$(MAKE) --no-print-directory -s data-summary
	@echo
	@$(MAKE) --no-print-directory -s report-print BIN=$(DEMO_BIN)

# The demo once per seed (data and training seeds), then one report whose findings are judged
# over the seeds: tables as mean ± std, a finding "reproduced" only beyond the seeds' spread
# (tic-report with one --metrics per seed; docs/eval.md). Each seed's demo lives in
# $(SEEDS_DIR)/seed<N>; reruns skip what is done.
DEMO_SEEDS ?= 0 1 2
SEEDS_DIR ?= out/demo-seeds
SEEDS_REPORT_CMD = $(DEMO_BIN)/tic-report $(foreach s,$(DEMO_SEEDS),--metrics $(SEEDS_DIR)/seed$(s)/metrics) \
  --runs-dir $(SEEDS_DIR)/seed$(firstword $(DEMO_SEEDS))/runs \
  --synth $(SEEDS_DIR)/seed$(firstword $(DEMO_SEEDS))/synth/synth.json \
  --output $(SEEDS_DIR)/report.md --json $(SEEDS_DIR)/report.json $(REPORT_FLAGS)
demo-seeds: $(DEMO_BUILD) ## The demo for each of DEMO_SEEDS, findings judged over the seeds (out/demo-seeds/report.md)
	for s in $(DEMO_SEEDS); do \
	  $(MAKE) --no-print-directory -j$(DEMO_JOBS) demo-data BIN=$(DEMO_BIN) SEED=$$s DEMO_DIR=$(SEEDS_DIR)/seed$$s && \
	  $(MAKE) --no-print-directory -j$(DEMO_JOBS) metrics BIN=$(DEMO_BIN) PROC_THREADS=1 SEED=$$s \
	    DEMO_DIR=$(SEEDS_DIR)/seed$$s TRAIN_FLAGS="$(DEMO_TRAIN_FLAGS)" EVAL_FLAGS="$(DEMO_EVAL_FLAGS)" \
	    || exit 1; \
	done
	$(SEEDS_REPORT_CMD)

# The paper's regime and a budget sweep (issue 17): `make demo-seeds` over PAPER_SEEDS once per
# per-step budget of PAPER_BUDGETS, each under $(PAPER_DIR)/n<budget> (seed<N>/ and report.md,
# report.json as demo-seeds writes them). PAPER_BUDGET (near convergence) trains every method of
# STRATEGIES; the other budgets only what the sweep compares (PAPER_SWEEP_STRATEGIES). Then
# tic-sweep: the oracle − cumulative-all ID gap (mean ± std over the seeds) and their compute
# ratio against the budget, $(PAPER_DIR)/sweep/sweep.{md,json,png,svg}. Reruns skip finished
# runs; a budget folder made by `make demo-seeds SEEDS_DIR=$(PAPER_DIR)/n<budget>` is reused.
PAPER_SEEDS ?= 0 1 2
PAPER_BUDGETS ?= 1920 3840 7680
PAPER_BUDGET ?= 7680
PAPER_SWEEP_STRATEGIES ?= cumulative-all oracle
PAPER_DIR ?= out/demo-paper
PAPER_REPORTS := $(foreach b,$(PAPER_BUDGETS),$(PAPER_DIR)/n$(b)/report.json)
$(PAPER_DIR)/sweep/sweep.md: $(PAPER_REPORTS)
	$(DEMO_BIN)/tic-sweep $(foreach b,$(PAPER_BUDGETS),--budget $(b)=$(PAPER_DIR)/n$(b)/report.json) \
	  --output-dir $(@D) > /dev/null
demo-paper: $(DEMO_BUILD) ## 3 seeds × every method at PAPER_BUDGET, plus the budget sweep (out/demo-paper/sweep/sweep.md)
	for b in $(PAPER_BUDGETS); do \
	  if [ $$b = $(PAPER_BUDGET) ]; then st="$(STRATEGIES)"; else st="$(PAPER_SWEEP_STRATEGIES)"; fi; \
	  $(MAKE) --no-print-directory demo-seeds DEMO_BUILD= DEMO_SEEDS="$(PAPER_SEEDS)" DEMO_BUDGET=$$b \
	    SEEDS_DIR=$(PAPER_DIR)/n$$b STRATEGIES="$$st" || exit 1; \
	done
	$(MAKE) --no-print-directory $(PAPER_DIR)/sweep/sweep.md
	@echo; echo "$(PAPER_BUDGET) samples per step, every method, seeds $(PAPER_SEEDS): $(PAPER_DIR)/n$(PAPER_BUDGET)/report.md"
	@echo; cat $(PAPER_DIR)/sweep/sweep.md

data-summary: ## Samples per training split and eval set of DATASET
	@echo "$(DATASET) data under $(DS_DIR):"
ifeq ($(DATASET),datacomp)
	@for y in $(YEARS); do printf '  train %s: ' $$y; grep -o '"output_count": [0-9]*' $(TIC_DATACOMP_Y_PATH)/train/$$y/meta.json; done
	@for y in $(YEARS); do printf '  eval %s: retrieval %s, datacompnet %s\n' $$y $$(cat $(EVAL_Y)/retrieval/$$y/count.txt) $$(cat $(EVAL_Y)/datacompnet/$$y/count.txt); done
	@for f in $(if $(STATIC_SET),wds_synth_static_test) $(SPECIAL_FOLDERS); do printf '  static %s: %s\n' $$f $$(cat $(EVAL_DATA_DIR)/$$f/count.txt); done
	@for f in $(if $(HF_CACHE_SET),$(wildcard $(EVAL_DATA_DIR)/hf_cache/nlphuji___parquet/*/*/*/dataset_info.json \
	  $(EVAL_DATA_DIR)/hf_cache/nlphuji___*/default/*/*/dataset_info.json)); do \
	  printf '  static hf_cache %s: %s\n' $$(echo $$f | sed -e 's|.*/nlphuji--\([a-z0-9_]*\)-.*|\1|' \
	    -e 's|.*/nlphuji___\([a-z0-9_]*\)/default/.*|\1|') \
	  $$(grep -o '"num_examples": [0-9]*' $$f | tr -dc 0-9); done
else
	@for l in $(DS_SPLITS); do printf '  %s: train %s, eval (retrieval) %s\n' $$l \
	  $$(grep -o ': *[0-9]*' $(DS_TRAIN)/$$l/sizes.json | tr -d ': ' | awk '{s += $$1} END {print s + 0}') \
	  $$(cat $(DS_EVAL)/$$l/count.txt); done
endif
	@echo "  tasks: $$(grep -c '^[a-z]' $(TASKLIST)) in $(TASKLIST)"

report-print:
	@$(REPORT_CMD)

# ---- large parity fixtures (on demand) ---------------------------------------------------------
# ViT-B-32 fixtures (~1.2 GB, not committed) for tic-model's #[ignore] parity test; needs a Python
# with torch and open_clip_torch 2.24 (FIXTURE_PYTHON), e.g. a venv made for the purpose.
FIXTURE_PYTHON ?= $(PYTHON)
MODEL_FIXTURES := out/model-fixtures/vit-b-32

$(MODEL_FIXTURES)/.done:
	$(FIXTURE_PYTHON) crates/tic-model/tests/fixtures/make_clip_fixtures.py vit-b-32
	@touch $@

model-fixtures: $(MODEL_FIXTURES)/.done ## ViT-B-32 OpenCLIP fixtures for test-vit-b-32 (FIXTURE_PYTHON with torch)

test-vit-b-32: model-fixtures ## ViT-B-32 parity against OpenCLIP (#[ignore] test)
	$(CARGO) test -p tic-model --test vit_b_32 -- --ignored

# ---- benchmarks and fuzzing -----------------------------------------------------------------
# tic-model's CPU benchmark with Intel MKL GEMMs (opt-in `mkl` feature): MKL comes from PyPI
# wheels in a venv (~500 MB), built into a separate target folder.
MKL_VENV ?= out/mkl-venv
MKL_TARGET ?= target/mkl
gpu-bundle: ## CUDA build + the one-run GPU check bundled into .gpu/ (docs/train.md)
	bash bench/gpu/train_throughput.sh build

# A Python with numpy for the dry run's feature comparison (the GPU machine's has it).
GPU_PY ?= $(PYTHON)

gpu-dry-run: ## The GPU check's script on CPU builds at tiny sizes (GPU_PY: a python with numpy)
	PY=$(GPU_PY) bash bench/gpu/train_throughput.sh dry-run

bench-mkl: ## ViT-B-16 towers on CPU with MKL GEMMs (docs/model.md)
	[ -x $(MKL_VENV)/bin/pip ] || $(PYTHON) -m venv $(MKL_VENV)
	[ -f $(MKL_VENV)/lib/libmkl_core.a ] || $(MKL_VENV)/bin/pip install -q mkl-static==2024.2.2 \
	  mkl-include==2024.2.2 intel-openmp==2024.2.1
	MKLROOT=$(abspath $(MKL_VENV)) CARGO_TARGET_DIR=$(MKL_TARGET) \
	  $(CARGO) build --release -p tic-model --benches --features mkl
	LD_LIBRARY_PATH=$(abspath $(MKL_VENV))/lib RAYON_NUM_THREADS=2 MKL_NUM_THREADS=2 \
	  MKLROOT=$(abspath $(MKL_VENV)) CARGO_TARGET_DIR=$(MKL_TARGET) \
	  $(CARGO) bench -p tic-model --bench model --features mkl -- vit_b_16_cpu_f32

bench-reshard: ## Resharder/stats throughput vs cp -r on a 100k-sample pool (docs/benchmarks.md)
	bash bench/reshard.sh

# A Python with img2dataset 1.40.0 for the comparison (without it only tic-download runs).
I2D_PY ?= $(PYTHON)

bench-download: ## tic-download vs img2dataset 1.40 on a loopback server: samples/s, CPU s (docs/benchmarks.md)
	PY=$(I2D_PY) FEATURES=$(DL_SIMD) bash bench/download.sh

fuzz: ## Run the cargo-fuzz targets briefly (coverage-guided; needs nightly + cargo-fuzz)
	bash fuzz/run.sh

# Every reader of untrusted input fuzzed on the stable toolchain (docs/fuzzing.md): each target
# in a child process under a FUZZ_MEM_MB memory cap, replaying its seeds and fuzz/regressions/,
# then FUZZ_SMOKE_SECONDS of mutated inputs; two targets at a time (9 targets: ~45 s). The seed
# is fixed so that `make test` is deterministic (a new finding shows up in a fuzzing run, not as
# a flaky CI); `make fuzz-smoke FUZZ_SEED=$$RANDOM FUZZ_SMOKE_SECONDS=600` explores further.
FUZZ_SMOKE_SECONDS ?= 8
FUZZ_MEM_MB ?= 512
FUZZ_SEED ?= 1
fuzz-smoke: ## Fuzz every untrusted-input reader briefly on stable, under a memory cap (part of make test)
	$(CARGO) build -p tic-fuzz --bin tic-fuzz
	$(TARGET_DIR)/debug/tic-fuzz smoke --seconds $(FUZZ_SMOKE_SECONDS) --mem-mb $(FUZZ_MEM_MB) \
	  --seed $(FUZZ_SEED) --jobs 2 --out target/fuzz-smoke

clean:
	rm -rf out bench/out
