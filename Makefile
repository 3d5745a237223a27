# relaydesk — the same commands for people and for CI.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run test lint typecheck test-sqlite test-postgresql bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEV_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

## run: install, migrate and start the panel and API on http://localhost:8000 (sandbox mode)
run: $(STAMP)
	$(BIN)/relaydesk migrate
	$(BIN)/relaydesk serve

## test: lint, type checks and the whole suite on SQLite and on PostgreSQL
test: $(DEV_STAMP) lint typecheck test-sqlite test-postgresql

lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

test-sqlite: $(DEV_STAMP)
	RELAYDESK_TEST_DB=sqlite $(BIN)/pytest -q

test-postgresql: $(DEV_STAMP)
	RELAYDESK_TEST_DB=postgresql $(BIN)/pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
