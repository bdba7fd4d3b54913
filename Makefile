# Alpha Factory — the two commands: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: demo test lint typecheck unit integration e2e bench system-deps install clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel

$(STAMP): $(PY) pyproject.toml .ci/fix-wheel.sh
	$(PY) -m pip install --quiet -e '.[dev]'
	bash .ci/fix-wheel.sh $(PY)
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)  ## create .venv and install the project with dev tools

system-deps:  ## Debian packages some tests need (sshd for the OpenSSH test, chromium for the report)
	@bash .ci/system-deps.sh

demo: install  ## run the daily loop on the embedded default and write a PM report
	$(VENV)/bin/alphafactory demo

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

test: install system-deps lint typecheck  ## lint, type check, then every test
	$(VENV)/bin/pytest -q -p no:cacheprovider --timeout=900

unit: install
	$(VENV)/bin/pytest -q -m "not integration and not e2e"

integration: install
	$(VENV)/bin/pytest -q -m integration

e2e: install
	$(VENV)/bin/pytest -q -m e2e

bench: install  ## benchmarks → bench/results/*.json
	$(PY) bench/lake.py
	$(PY) bench/ingest.py
	$(PY) bench/validation.py
	$(PY) bench/research.py
	$(PY) bench/optimizer.py --sweep
	$(PY) bench/execution.py
	$(PY) bench/backtest.py --universe 80 --months 12

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
