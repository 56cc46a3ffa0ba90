# Two entry points: `make demo` and `make test`. Each makes its own virtualenv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint emulate screenshot bench bench-smoke soak clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[emulator]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/batch-poller demo

emulate: $(VENV)/.installed
	$(BIN)/batch-poller emulate

lint: $(VENV)/.installed-test
	$(BIN)/ruff check batch_poller tests bench
	$(BIN)/ruff format --check batch_poller tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

bench: $(VENV)/.installed-test
	$(BIN)/python -m bench

bench-smoke: $(VENV)/.installed-test
	$(BIN)/python -m bench --smoke --output /tmp/batch-poller-bench-smoke.json

# The SIGKILL campaign at full size; its figures (kills, rows compared, violations) go to
# SOAK_REPORT as JSON, for docs/reliability.md. The same test runs 10 kills in `make test`.
SOAK_KILLS ?= 200
SOAK_REPORT ?= soak-report.json
soak: $(VENV)/.installed-test
	BATCH_POLLER_CAMPAIGN_KILLS=$(SOAK_KILLS) BATCH_POLLER_CAMPAIGN_REPORT=$(SOAK_REPORT) \
		$(BIN)/pytest -q -s -p no:cacheprovider tests/faults/test_kill_campaign.py

screenshot: $(VENV)/.installed-test
	BATCH_POLLER_DOCS_SCREENSHOT=1 $(BIN)/pytest -q tests/http/test_page.py -k days_work_on_the_page

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
