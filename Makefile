# Every target creates the virtual environment it needs; `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= .demo

.PHONY: help
help: ## List the documented targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

.PHONY: venv
venv: $(BIN)/.installed ## Create the virtual environment with every extra (idempotent)

.PHONY: system-deps
system-deps: ## Install the Debian packages and tools the tests use (idempotent; needs root)
	bash .ci/install-system-deps.sh

.PHONY: demo
demo: venv ## Run the local demo on the embedded defaults (synthetic data, local storage)
	$(BIN)/python -m tools demo --workdir $(DEMO_DIR)

.PHONY: lint
lint: venv ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

.PHONY: format
format: venv ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

.PHONY: chart-docs
chart-docs: venv ## Write the chart's README.md and schema descriptions from the values.yaml comments
	$(BIN)/python -m tools.chart_docs

.PHONY: test
test: venv system-deps lint ## Lint, type-check and run every test (the CI command)
	$(BIN)/pytest

.PHONY: test-fast
test-fast: venv ## Run the tests that start no server
	$(BIN)/pytest -m "not servers and not slow"

.PHONY: bench
bench: venv ## Run the benchmarks under bench/ and print their figures
	@for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

.PHONY: clean
clean: ## Remove the demo folder and caches (keeps the virtual environment)
	rm -rf $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
include k8s/local.mk
