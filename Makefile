# rerate: two-command quick start (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOME_DIR ?= rerate-home

.PHONY: demo test lint typecheck unit bench clean browser serve

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rerate --home $(HOME_DIR) demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# Debian's chromium for the browser tests (skipped, loudly, when it cannot be installed).
browser:
	@scripts/install-chromium.sh

test: lint typecheck browser
	$(BIN)/pytest

serve: $(STAMP)
	$(BIN)/rerate --home $(HOME_DIR) serve

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) $(HOME_DIR) bench-data test-artifacts .pytest_cache .mypy_cache .ruff_cache
