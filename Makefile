# qrpay developer commands. `make run` and `make test` are all a newcomer needs.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PG_ADMIN_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/postgres

.PHONY: run install test test-unit test-component test-integration test-faults test-e2e test-browser lint bench-pos bench-cluster cluster cluster-stop clean

$(STAMP): pyproject.toml tools/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]" -e tools
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/qrpay up

test: $(STAMP)
	$(BIN)/pytest tests -q -p no:cacheprovider

test-unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

test-component: $(STAMP)
	$(BIN)/pytest tests/component -q

test-integration: $(STAMP)
	QRPAY_TEST_POSTGRES_URL=$${QRPAY_TEST_POSTGRES_URL:-$(PG_ADMIN_URL)} $(BIN)/pytest tests/integration -q

# Fault injection: lost answers, unreachable dependencies, graceful stop, the cluster.
test-faults: $(STAMP)
	QRPAY_TEST_POSTGRES_URL=$${QRPAY_TEST_POSTGRES_URL:-$(PG_ADMIN_URL)} $(BIN)/pytest tests/faults tests/integration/test_graceful_shutdown.py tests/integration/test_cluster.py -m "not slow" -q -s

test-e2e: $(STAMP)
	$(BIN)/pytest tests/e2e -q

# Playwright driving Debian's Chromium (/usr/bin/chromium); never a downloaded browser.
test-browser: $(STAMP)
	$(BIN)/pytest tests/browser -q

lint: $(STAMP)
	$(BIN)/ruff check src tools tests
	$(BIN)/ruff format --check src tools tests
	$(BIN)/mypy

bench-pos: $(STAMP)
	$(BIN)/python -m qrpay_tools.bench.pos

bench-pay: $(STAMP)
	$(BIN)/python -m qrpay_tools.bench.pay

# The POS mix and payments together: one instance of each service, then the cluster behind
# nginx (own ports, databases and var/bench-cluster), at a sustainable load, the target, 2x.
bench-cluster: $(STAMP)
	$(BIN)/python -m qrpay_tools.bench.cluster

# Production-like: PostgreSQL, nginx (Debian's, installed if missing), 2x iiko-integration
# and 2x payments-eda behind it, one of each other service, the queue worker.
cluster: $(STAMP)
	$(BIN)/python -m qrpay_tools.cluster up

cluster-stop: $(STAMP)
	$(BIN)/python -m qrpay_tools.cluster down

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
