# Two commands on a fresh machine: `make demo` (install, run a study) and `make test` (lint, the
# documentation site's strict build, the tests).
# torch==2.13.0 (a CPU build) is installed before the package so that pip never pulls a
# multi-gigabyte CUDA build to satisfy the package's torch range.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: demo test lint docs install install-dev browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) $(TORCH)
	$(PIP) -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(PIP) -e '.[dev]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	$(BIN)/dltune run --trials 80 --timeout 100 --seed 0

# examples/ too: its Python files and its notebook (ruff reads a notebook's code cells)
lint: install-dev
	$(BIN)/ruff check src tests $(wildcard benchmarks) examples
	$(BIN)/ruff format --check src tests $(wildcard benchmarks) examples
	$(BIN)/mypy

# The documentation site (docs/, mkdocs.yml), built strict: a broken link or anchor, a missing
# snippet or a stale API name fails it. Into site/ (ignored by git); `mkdocs serve` to read it.
docs: install-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# The report's browser test drives Debian's chromium; installed here where we may (root, apt),
# else that one test is skipped (CI sets DLTUNE_REQUIRE_BROWSER=1 to make it fail instead).
browser:
	@command -v chromium >/dev/null 2>&1 || apt-get install -y -q chromium >/dev/null 2>&1 \
	  || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1) \
	  || echo "note: chromium could not be installed; the report's browser test will be skipped"

# -n auto: a worker per core; loadgroup keeps the tests of one xdist_group together on one
# worker, so that what they share (the session's trained study) is made once.
test: lint docs browser
	$(BIN)/python -m pytest -q -n auto --dist loadgroup

clean:
	rm -rf $(VENV) dltune.db site .pytest_cache .mypy_cache .ruff_cache
