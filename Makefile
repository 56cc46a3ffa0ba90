# Two entry points: `make demo` and `make test`. Each makes its own virtualenv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint emulate screenshot clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/batch-poller demo

emulate: $(VENV)/.installed
	$(BIN)/batch-poller emulate

lint: $(VENV)/.installed-test
	$(BIN)/ruff check batch_poller tests scripts
	$(BIN)/ruff format --check batch_poller tests scripts
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

screenshot: $(VENV)/.installed-test
	$(BIN)/python scripts/screenshot_status_page.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
