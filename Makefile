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
YEAR ?= $(FIRST_YEAR)
YEARMONTH ?= $(YEAR)03
RESHARD_FLAGS ?= -q

BINARIES := tic-synth tic-reshard tic-stats tic-sizes tic-wds-convert tic-make-tars

.PHONY: all build install-bin deps test fmt-check clippy unit demo demo-data data-year \
        data-month stats uids bench-reshard fuzz clean help

all: build

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

# ---- build and test -------------------------------------------------------------------------
build: ## Build every binary (release)
	$(CARGO) build --profile $(PROFILE) --workspace --bins

install-bin: build ## Copy the binaries into bin/
	@mkdir -p bin
	@for b in $(BINARIES); do cp -f $(BIN)/$$b bin/; done

deps: ## Install what the tests need (Rust components, moto S3 server)
	@command -v rustfmt >/dev/null && command -v cargo-clippy >/dev/null || rustup component add rustfmt clippy
	@command -v moto_server >/dev/null || $(PYTHON) -m pip install --quiet 'moto[server]'

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
$(DATA_Y_PATH)/train/%.npy: | $(SYNTH_DIR)/synth.json
	@mkdir -p $(@D)
	cp $(UID_SOURCE)/tic-datacomp_training_yearly_noeval/$*.npy $@

$(DATA_M_PATH)/traineval/%/.extracted: | $(SYNTH_DIR)/synth.json
	@mkdir -p $(DATA_M_PATH)/traineval
	tar -xf $(UID_SOURCE)/tic-datacomp_training_monthly/$*.tar -C $(DATA_M_PATH)/traineval/
	@touch $@

# Yearly training splits: reshard the pool with each year's uids.
$(TIC_DATACOMP_Y_PATH)/train/%/meta.json: $(DATA_Y_PATH)/train/%.npy
	$(BIN)/tic-reshard -i $(DATACOMP_PATH) -o $(@D) -s $< $(RESHARD_FLAGS)

# Monthly training splits: reshard the year's training split with the month's uids.
.SECONDEXPANSION:
$(TIC_DATACOMP_M_PATH)/train/%/meta.json: $(TIC_DATACOMP_Y_PATH)/train/$$(shell echo $$* | cut -c1-4)/meta.json \
    $(DATA_M_PATH)/traineval/$$(shell echo $$* | cut -c1-4)/.extracted
	$(BIN)/tic-reshard -i $(TIC_DATACOMP_Y_PATH)/train/$(shell echo $* | cut -c1-4) -o $(@D) \
	  -s $(DATA_M_PATH)/traineval/$(shell echo $* | cut -c1-4)/$*.npy $(RESHARD_FLAGS)

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

demo-data: build $(foreach y,$(YEARS),$(TIC_DATACOMP_Y_PATH)/train/$(y)/meta.json) \
    $(TIC_DATACOMP_M_PATH)/train/$(FIRST_YEAR)03/meta.json
	$(MAKE) --no-print-directory stats

# ---- the demo -----------------------------------------------------------------------------
demo: build ## The whole pipeline on the synthetic default, under DEMO_DIR
	$(MAKE) --no-print-directory demo-data
	@$(BIN)/tic-synth --help >/dev/null
	@echo
	@echo "demo data under $(DEMO_DIR):"
	@for y in $(YEARS); do printf '  train %s: ' $$y; grep -o '"output_count": [0-9]*' $(TIC_DATACOMP_Y_PATH)/train/$$y/meta.json; done
	@printf '  train %s03: ' $(FIRST_YEAR); grep -o '"output_count": [0-9]*' $(TIC_DATACOMP_M_PATH)/train/$(FIRST_YEAR)03/meta.json

# ---- benchmarks and fuzzing -----------------------------------------------------------------
bench-reshard: ## Resharder/stats throughput vs cp -r on a 100k-sample pool (docs/benchmarks.md)
	bash bench/reshard.sh

fuzz: ## Run the cargo-fuzz targets briefly (needs nightly + cargo-fuzz)
	bash fuzz/run.sh

clean:
	rm -rf out bench/out
