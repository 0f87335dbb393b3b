# Everything starts from `python3` (3.11+); the virtual environment is built on first use
# from the pins in pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint typecheck bench container-check clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/backprop db upgrade
	$(BIN)/backprop serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	scripts/ensure-chromium
	$(BIN)/pytest

bench: install
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python bench/core_bench.py

# Build the image and run it alone and as the compose stack (needs docker or podman).
container-check:
	scripts/container-check

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
