# One entry point for everything CI runs: `make check` reproduces CI.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
STAMP_RUN := $(VENV)/.installed

.PHONY: demo test check lint typecheck bench clean

# The runtime environment: created once, reinstalled only when pyproject.toml changes.
$(STAMP_RUN): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# The development environment: runtime plus dev extras (tests, linters).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,all]"
	touch $@ $(STAMP_RUN)

demo: $(STAMP_RUN)
	$(BIN)/govbus run

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests examples bench
	$(BIN)/ruff format --check src tests examples bench

typecheck: $(STAMP)
	$(BIN)/mypy

POLICIES := $(filter-out %.cases.yaml,$(wildcard policies/*.yaml))

check: lint typecheck test
	$(BIN)/govbus policy lint $(POLICIES)
	$(BIN)/govbus policy test policies/ --min-coverage 100
	$(BIN)/govbus run --strict --quiet
	$(BIN)/govbus redteam run --no-progress --mutate 7
	$(BIN)/govbus drill run drills/ --no-progress

STAMP_BENCH := $(VENV)/.installed-bench

# Benchmark-only dependencies (Presidio), kept out of the development environment.
$(STAMP_BENCH): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,all,bench]"
	touch $@

bench: $(STAMP_BENCH)
	$(BIN)/python bench/dispatch.py --out bench/dispatch.json
	$(BIN)/python bench/policy.py --out bench/policy.json
	$(BIN)/python bench/nats.py --out bench/nats.json
	$(BIN)/python bench/audit.py --out bench/audit.json

clean:
	rm -rf $(VENV) .govbus .mypy_cache .ruff_cache .pytest_cache
