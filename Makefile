# Alpha Factory — the two commands: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
# The `fix` extra (QuickFIX) compiles from source once (~7 min): only the targets that run
# the FIX tests install it (`make fix`, `make test`, `make unit`), never `make demo`
# (the demo trades with the paper broker). Its stamp is newer than the install stamp, so a
# demo install followed by `make test` still installs it.
FIX_STAMP := $(VENV)/.fix-installed-$(shell cat pyproject.toml .ci/fix-wheel.sh | sha1sum | cut -c1-12)

.PHONY: demo test lint typecheck unit integration e2e bench system-deps install fix clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel

# uv resolves and downloads in parallel: the install takes about 1 minute instead of 4–5
# with pip on this machine kind. pip stays the fallback (no uv wheel for the platform, or
# `make INSTALLER=pip`); both install the same ranges from pyproject.toml.
INSTALLER ?= uv
$(STAMP): $(PY) pyproject.toml
	@if [ "$(INSTALLER)" = uv ] && $(PY) -m pip install --quiet 'uv>=0.5,<1' 2>/dev/null; then \
	  $(VENV)/bin/uv pip install --quiet --python $(PY) -e '.[dev]'; \
	else \
	  $(PY) -m pip install --quiet -e '.[dev]'; \
	fi
	rm -f $(VENV)/.installed-* && touch $(STAMP)

$(FIX_STAMP): $(STAMP) .ci/fix-wheel.sh
	bash .ci/fix-wheel.sh $(PY)
	rm -f $(VENV)/.fix-installed-* && touch $(FIX_STAMP)

install: $(STAMP)  ## create .venv and install the project with dev tools (no QuickFIX)

fix: $(FIX_STAMP)  ## install the `fix` extra (QuickFIX, from the wheel cache of .ci/fix-wheel.sh)

system-deps:  ## Debian packages some tests need (sshd for the OpenSSH test, chromium for the report)
	@bash .ci/system-deps.sh

demo: install  ## run the daily loop on the embedded default and write a PM report
	$(VENV)/bin/alphafactory demo

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports  # the layering contracts in pyproject.toml

typecheck: install
	$(VENV)/bin/mypy

# Every test, two at a time (pytest-xdist): most of the suite's time is Airflow, Celery and
# browser processes that leave a core idle while they start, so two workers on the 2-core CI
# machine took 17 minutes where one took 30-40. Tests that start a whole production cluster
# (API server, scheduler, two Celery workers) share an xdist_group, so two clusters never
# start side by side. TEST_JOBS=1 runs them one at a time.
TEST_JOBS ?= 2

test: install fix system-deps lint typecheck  ## lint, type check, then every test
	$(VENV)/bin/pytest -q -p no:cacheprovider --timeout=900 -n $(TEST_JOBS) --dist loadgroup

# Test levels (a module-level marker in every test file, tests/test_markers.py checks it):
# unit = in-process; integration = a real server on loopback; e2e = whole DAGs through
# Airflow. A file's marker is its default: tests that need more carry their own
# integration/e2e marker, hence "not integration and not e2e" rather than "-m unit".
UNIT_JOBS ?= auto

unit: install fix  ## the fast inner loop (a few minutes on 2 cores): unit tests, in parallel
	$(VENV)/bin/pytest -q -p no:cacheprovider -m "not integration and not e2e" -n $(UNIT_JOBS)

integration: install
	$(VENV)/bin/pytest -q -p no:cacheprovider --timeout=900 -m integration

e2e: install
	$(VENV)/bin/pytest -q -p no:cacheprovider --timeout=900 -m e2e

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
