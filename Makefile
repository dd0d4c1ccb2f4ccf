# Pigeon: `make run` starts the gateway, `make test` runs every check and test.
# The interpreter .venv is made from: Debian's python3.11 where it can make a venv (built with
# profile-guided optimisation and LTO: ~25% less CPU per message than an unoptimised build
# such as pyenv's default, docs/adr/0022), else python3 on PATH.
SYSTEM_PYTHON := /usr/bin/python3.11
PYTHON ?= $(shell $(SYSTEM_PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1 && echo $(SYSTEM_PYTHON) || echo python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check lint format unit integration e2e interop bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/pigeon serve

check: $(STAMP)
	$(BIN)/ruff format --no-cache --check src tests bench
	$(BIN)/ruff check --no-cache src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

test: check
	$(BIN)/pytest -q -p no:cacheprovider

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP)
	$(BIN)/pytest -q tests/integration

e2e: $(STAMP)
	$(BIN)/pytest -q tests/e2e

interop: $(STAMP)
	$(BIN)/pytest -q tests/interop

# Every scenario on SQLite and PostgreSQL (bench/suite.py --help); e.g. BENCH_ARGS=--quick.
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python bench/suite.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) pigeon-data .mypy_cache .ruff_cache .pytest_cache
