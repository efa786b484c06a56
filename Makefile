# One gate: `make check` installs the dev environment (once) and runs every check.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: install check lint typecheck test test-fast demo clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

# AWS's ASL validators (tests/infra/test_asl_tooling.py runs them): npm ci, once per lockfile.
ASL_LINT := tools/asl-lint
$(ASL_LINT)/node_modules/.installed: $(ASL_LINT)/package.json $(ASL_LINT)/package-lock.json
	npm ci --prefix $(ASL_LINT) --no-audit --no-fund
	touch $@

$(BIN)/.installed-local: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[local]'
	touch $@

# Install the runtime and run a real molsim mission end to end in the embedded local mode.
demo: $(BIN)/.installed-local
	$(BIN)/lighthpc local run examples/molsim/queries.smi

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PYTHONPATH=infra $(BIN)/lint-imports --no-cache

typecheck: install
	$(BIN)/mypy

test: install $(ASL_LINT)/node_modules/.installed
	$(BIN)/pytest

# The inner loop: pure and embedded-cloud tests, no node processes, no CDK synth (< 2 min).
test-fast: install
	$(BIN)/pytest -m "unit or functional" tests/unit tests/functional  # paths: skip importing the CDK

check: lint typecheck test

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
