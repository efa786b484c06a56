# One gate: `make check` installs the dev environment (once) and runs every check.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: install localstack check lint typecheck test test-fast demo clean

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

# LocalStack, the second Step Functions engine of the scenario tests (tests/functional/_localstack.py):
# it needs Python >= 3.12, so it gets its own venv from pyenv's 3.13. Host mode, no Docker.
# The pins are the ones it runs with here (docs/architecture.md, "Tests"). ~5 min on 2 cores.
LOCALSTACK_VENV   := .venv-localstack
ifndef LOCALSTACK_PYTHON
LOCALSTACK_PYTHON := $(firstword $(wildcard $(shell pyenv root 2>/dev/null)/versions/3.13*/bin/python3.13) \
                                 $(shell command -v python3.13))
endif
LOCALSTACK_PINS   := 'localstack-core[runtime]==2026.3.0' 'cbor2==5.9.0' 'pyopenssl==24.2.1' \
                     'cryptography==43.0.3' 'service-identity==24.2.0'
# The stamp names a hash of the pins: changing a pin rebuilds the venv, editing the Makefile does not.
LOCALSTACK_STAMP  := $(LOCALSTACK_VENV)/.installed-$(shell echo $(LOCALSTACK_PINS) | cksum | cut -d' ' -f1)
localstack: $(LOCALSTACK_STAMP)
$(LOCALSTACK_STAMP):
	@test -n "$(LOCALSTACK_PYTHON)" || { echo "Python 3.13 not found (pyenv or PATH): LocalStack needs it" >&2; exit 1; }
	rm -rf $(LOCALSTACK_VENV)
	$(LOCALSTACK_PYTHON) -m venv $(LOCALSTACK_VENV)
	$(LOCALSTACK_VENV)/bin/pip install --quiet $(LOCALSTACK_PINS)
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

# Two passes on both cores (pytest-xdist; each worker has its own emulator and LocalStack on
# free ports, and finds its node processes by its own marker): the tiers without node
# processes, then e2e, whose missions mostly wait on heartbeats and boots (load ~1 alone),
# so its tests never share a worker with the CPU-bound hypothesis tiers.
test: install $(ASL_LINT)/node_modules/.installed $(LOCALSTACK_STAMP)
	$(BIN)/pytest -n 2 tests/unit tests/functional tests/infra
	$(BIN)/pytest -n 2 tests/e2e

# The inner loop: pure and embedded-cloud tests, no node processes, no CDK synth (< 2 min).
test-fast: install
	$(BIN)/pytest -n 2 -m "unit or functional" tests/unit tests/functional  # paths: skip importing the CDK

check: lint typecheck test

clean:
	rm -rf $(VENV) $(LOCALSTACK_VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
