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

# The versions come from the lock, hash-checked. --no-deps: the lock is complete (uv
# resolved it), and older pips (23.x, as in the venvs of Python 3.11 and Debian 12)
# refuse a hash-checked install in which a package asks for another's extra
# (evidently: pandas[parquet]); `pip check` still verifies every requirement is met.
# The project itself is built by the locked setuptools (no unpinned build environment).
$(BIN)/.installed: pyproject.toml requirements/dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-deps --require-hashes -r requirements/dev.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/pip check --quiet
	touch $@

.PHONY: venv
venv: $(BIN)/.installed ## Create the virtual environment with every extra, from requirements/dev.lock (idempotent)

# One lock per install set, for Python 3.11 on linux x86_64 (the images' platform):
# dev.lock (every extra and the build backend) first, then the images' locks and the
# build backend's constrained by it, so a package has one version in every lock.
# uv keeps the versions already in a lock; LOCK_ARGS=--upgrade (or
# "--upgrade-package fastapi") moves them.
UV ?= $(BIN)/uv
LOCK_ARGS ?=
UV_COMPILE = $(UV) pip compile --quiet --generate-hashes --python-version 3.11 \
	--python-platform x86_64-manylinux_2_36 --custom-compile-command "make lock" $(LOCK_ARGS)

.PHONY: lock
lock: venv ## Regenerate the lock files in requirements/ from pyproject.toml
	$(UV_COMPILE) pyproject.toml requirements/build.in --all-extras -o requirements/dev.lock
	$(UV_COMPILE) pyproject.toml --extra service -c requirements/dev.lock -o requirements/scorer.lock
	$(UV_COMPILE) pyproject.toml --extra training --extra monitoring -c requirements/dev.lock \
		-o requirements/jobs.lock
	$(UV_COMPILE) requirements/build.in -c requirements/dev.lock -o requirements/build.lock

.PHONY: system-deps
system-deps: ## Install the Debian packages and tools the tests use (idempotent; needs root)
	bash .ci/install-system-deps.sh

.PHONY: demo
demo: venv ## Run the local demo on the embedded defaults (synthetic data, local storage)
	$(BIN)/python -m tools demo --workdir $(DEMO_DIR)

.PHONY: lint
lint: venv ## ruff (lint + format check), mypy and the package rule (import-linter)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

.PHONY: format
format: venv ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

.PHONY: chart-docs
chart-docs: venv ## Write the chart's README.md and schema descriptions from the values.yaml comments
	$(BIN)/python -m tools.chart_docs

.PHONY: test
test: venv system-deps lint ## Lint, type-check and run every test with the coverage gate (the CI command)
	$(BIN)/pytest --cov

.PHONY: test-fast
test-fast: venv ## Run the tests that start no server
	$(BIN)/pytest -m "not servers and not slow"

.PHONY: bench
bench: venv ## Run the benchmarks under bench/ and print their figures
	@for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

.PHONY: clean
clean: ## Remove the demo folder and caches (keeps the virtual environment)
	rm -rf $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* htmlcov
include k8s/local.mk
