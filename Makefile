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
BIN ?= $(CURDIR)/target/$(PROFILE)
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

# ---- the embedded synthetic default -------------------------------------------------------
DEMO_DIR ?= out/demo
SEED ?= 0
SYNTH_SAMPLES ?= 6000
SYNTH_SHARDS ?= 12
SYNTH_YEARS ?= 4
FIRST_YEAR ?= 2014
SYNTH_IMAGE ?= 64
YEARS ?= $(shell seq $(FIRST_YEAR) $$(( $(FIRST_YEAR) + $(SYNTH_YEARS) - 1 )))

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

BINARIES := tic-synth tic-reshard tic-stats tic-sizes tic-wds-convert tic-make-tars \
  tic-eval-uids tic-datacompnet-classes tic-tasklist tic-restricted-classes tic-yfcc-splits \
  tic-redcaps-splits tic-synth-captions tic-embed tic-metrics tic-train tic-eval tic-report

.PHONY: all build install-bin deps test fmt-check clippy unit demo demo-data data-year \
        data-month stats eval-sets tasklist yfcc redcaps bench-reshard fuzz clean help

all: build

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

# ---- build and test -------------------------------------------------------------------------
build: ## Build every binary (release)
	$(CARGO) build --profile $(PROFILE) --workspace --bins

install-bin: build ## Copy the binaries into bin/
	@mkdir -p bin
	@for b in $(BINARIES); do cp -f $(BIN)/$$b bin/; done

WORDNET_DIR ?= /usr/share/wordnet

deps: ## Install what the tests need (Rust components, moto S3 server, WordNet 3.0)
	@command -v rustfmt >/dev/null && command -v cargo-clippy >/dev/null || rustup component add rustfmt clippy
	@$(PYTHON) -c 'import moto.server, flask, flask_cors' 2>/dev/null || \
	  { $(PYTHON) -m pip install --quiet 'moto[server]' && (pyenv rehash 2>/dev/null || true); }
	@[ -f $(WORDNET_DIR)/data.noun ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wordnet-base; }

fmt-check:
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	$(CARGO) test --workspace

test: deps fmt-check clippy unit ## Formatting, lints and every test (CI's command)

# ---- data: synthetic pool, UID files, time splits -------------------------------------------
$(SYNTH_DIR)/synth.json:
	$(BIN)/tic-synth --out $(SYNTH_DIR) --seed $(SEED) --num-samples $(SYNTH_SAMPLES) \
	  --num-shards $(SYNTH_SHARDS) --first-year $(FIRST_YEAR) --num-years $(SYNTH_YEARS) \
	  --image-size $(SYNTH_IMAGE) --quiet

# "Download" the published UID files (offline: copy them from UID_SOURCE).
$(UID_DIR)/yearly/train/%.npy: | $(SYNTH_DIR)/synth.json
	@mkdir -p $(@D)
	cp $(UID_SOURCE)/tic-datacomp_training_yearly_noeval/$*.npy $@

$(UID_DIR)/monthly/traineval/%/.extracted: | $(SYNTH_DIR)/synth.json
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
TASKLIST ?= $(DEMO_DIR)/tasklist.yml
EVAL_Y := $(DATA_Y_PATH)/eval
EVAL_M := $(DATA_M_PATH)/eval

$(EVAL_Y)/alluids.npy: | $(SYNTH_DIR)/synth.json
	$(BIN)/tic-eval-uids --output-path $(DATA_Y_PATH) --input-dir $(UID_SOURCE) --no-download -q

$(EVAL_Y)/datacompnet/classnames.txt: | $(SYNTH_DIR)/synth.json
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

eval-sets: $(EVAL_SETS) ## Retrieval and DataCompNet eval sets (CLIP_benchmark layout)

$(TASKLIST): $(EVAL_SETS)
	$(BIN)/tic-tasklist --yaml-path $@ --eval-tasks retrieval/yearly,datacompnet/yearly,retrieval/monthly,datacompnet/monthly \
	  --data-dir $(DEMO_DIR)/data/tic/datacomp --data-depth 4 -q

tasklist: $(TASKLIST) ## tasklist.yml for the eval sets that exist

# ---- TiC-YFCC15M and TiC-RedCaps through the same tools -----------------------------------------
YFCC_DIR ?= $(DEMO_DIR)/yfcc15m
REDCAPS_DIR ?= $(DEMO_DIR)/redcaps

$(YFCC_DIR)/tars/.done:
	$(BIN)/tic-synth-captions yfcc --out $(YFCC_DIR) --rows 2000 --images -q
	$(BIN)/tic-yfcc-splits --input $(YFCC_DIR)/yfcc15m.csv --output-dir $(YFCC_DIR)/splits -q
	for f in $(YFCC_DIR)/splits/*.csv; do \
	  $(BIN)/tic-make-tars --input $$f --image-dir $(YFCC_DIR)/images \
	    --output-dir $(YFCC_DIR)/tars/$$(basename $$f .csv) --datacomp-compat -q; done
	@touch $@

$(REDCAPS_DIR)/tars/.done:
	$(BIN)/tic-synth-captions redcaps --out $(REDCAPS_DIR) --rows 2000 --images -q
	$(BIN)/tic-redcaps-splits --annotations-dir $(REDCAPS_DIR)/annotations --output-dir $(REDCAPS_DIR)/splits -q
	for f in $(REDCAPS_DIR)/splits/*.csv; do \
	  $(BIN)/tic-make-tars --input $$f --image-dir $(REDCAPS_DIR)/images \
	    --output-dir $(REDCAPS_DIR)/tars/$$(basename $$f .csv) --datacomp-compat -q; done
	@touch $@

yfcc: $(YFCC_DIR)/tars/.done ## Synthetic TiC-YFCC15M year splits packed as shards
redcaps: $(REDCAPS_DIR)/tars/.done ## Synthetic TiC-RedCaps year splits packed as shards

demo-data: build $(foreach y,$(YEARS),$(TIC_DATACOMP_Y_PATH)/train/$(y)/meta.json) \
    $(TIC_DATACOMP_M_PATH)/train/$(YEARMONTH)/meta.json $(TASKLIST) $(YFCC_DIR)/tars/.done $(REDCAPS_DIR)/tars/.done
	$(MAKE) --no-print-directory stats

# ---- the demo -----------------------------------------------------------------------------
demo: build ## The whole pipeline on the synthetic default, under DEMO_DIR
	$(MAKE) --no-print-directory demo-data
	@$(BIN)/tic-synth --help >/dev/null
	@echo
	@echo "demo data under $(DEMO_DIR):"
	@for y in $(YEARS); do printf '  train %s: ' $$y; grep -o '"output_count": [0-9]*' $(TIC_DATACOMP_Y_PATH)/train/$$y/meta.json; done
	@printf '  train %s: ' $(YEARMONTH); grep -o '"output_count": [0-9]*' $(TIC_DATACOMP_M_PATH)/train/$(YEARMONTH)/meta.json
	@for y in $(YEARS); do printf '  eval %s: retrieval %s, datacompnet %s\n' $$y $$(cat $(EVAL_Y)/retrieval/$$y/count.txt) $$(cat $(EVAL_Y)/datacompnet/$$y/count.txt); done
	@echo "  tasks: $$(grep -c '^tic/' $(TASKLIST)) in $(TASKLIST)"

# ---- benchmarks and fuzzing -----------------------------------------------------------------
bench-reshard: ## Resharder/stats throughput vs cp -r on a 100k-sample pool (docs/benchmarks.md)
	bash bench/reshard.sh

fuzz: ## Run the cargo-fuzz targets briefly (needs nightly + cargo-fuzz)
	bash fuzz/run.sh

clean:
	rm -rf out bench/out
