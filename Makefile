# qrpay developer commands. `make run` and `make test` are all a newcomer needs.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PG_ADMIN_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/postgres

.PHONY: run install lock test test-unit test-component test-fuzz test-integration test-faults test-e2e test-browser lint bench-pos bench-memory bench-pay bench-tickets bench-push bench-cluster cluster cluster-stop cluster-ctl deploy-manifests apt-nginx apt-wrk clean

LOCK := requirements.lock
# requirements.lock pins every package with its hashes (`make lock` writes it): installed
# hash-checked, then the two local packages editable, without resolving anything again.
$(STAMP): pyproject.toml tools/pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e . -e tools
	touch $(STAMP)

install: $(STAMP)

# After a change to the dependencies in pyproject.toml or tools/pyproject.toml: the pins
# kept where they still fit. LOCK_ARGS=--upgrade moves everything to the newest allowed,
# LOCK_ARGS="--upgrade-package fastapi" one package.
lock:
	test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile requirements.in --generate-hashes --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 --no-emit-package qrpay \
	  --no-emit-package qrpay-tools --custom-compile-command "make lock" --quiet \
	  -o $(LOCK) $(LOCK_ARGS)

run: $(STAMP)
	$(BIN)/qrpay up

test: $(STAMP)
	$(BIN)/pytest tests -q -p no:cacheprovider

test-unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

test-component: $(STAMP)
	$(BIN)/pytest tests/component -q

# Every public route with generated input (schemathesis, hypothesis): no 5xx, a refused
# request creates nothing. Derandomized: the same cases every run.
test-fuzz: $(STAMP)
	$(BIN)/pytest tests/fuzz -q

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

# System programs the tools run, Debian's packages, installed here when missing (the tools
# themselves never install anything: without one they say which target to run).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
apt-nginx:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || \
	  { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq nginx; }

apt-wrk:
	@command -v wrk >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk; }

bench-pos: $(STAMP) apt-wrk
	$(BIN)/python -m qrpay_tools.bench.pos $(ARGS)

# iiko-integration's memory of statuses filled to feed.max_orders, before and after issue 22:
# RSS per order and the GC's full-collection pauses, each way in its own process.
bench-memory: $(STAMP)
	$(BIN)/python -m qrpay_tools.bench.memory $(ARGS)

bench-pay: $(STAMP)
	$(BIN)/python -m qrpay_tools.bench.pay --split

# CPU per call of the service-ticket work one request does (sign cached, check cached,
# and the uncached ones a ticket costs once), in this process: a box-independent figure.
bench-tickets: $(STAMP)
	$(BIN)/python -m qrpay_tools.bench.tickets $(ARGS)

# 10,000 POS on the WebSocket stream while 100 status changes/s go through eda (PostgreSQL).
# Each connection is a file descriptor on both sides: the limit is raised for both.
# PUSH_ARGS: e.g. --connections 500 --seconds 5.
bench-push: $(STAMP)
	ulimit -n 65536 2>/dev/null || ulimit -n $$(ulimit -Hn); $(BIN)/python -m qrpay_tools.bench.push $(PUSH_ARGS)

# The POS mix and payments together: one instance of each service, then the cluster behind
# nginx (own ports, databases and var/bench-cluster), at a sustainable load, the target, 2x.
bench-cluster: $(STAMP) apt-nginx
	$(BIN)/python -m qrpay_tools.bench.cluster $(ARGS)

# Production-like: PostgreSQL, nginx (Debian's, installed if missing), 2x iiko-integration
# and 2x payments-eda behind it, one of each other service, the queue worker, all under
# supervisord (restarted on crash, logs rotated).
cluster: $(STAMP) apt-nginx
	$(BIN)/python -m qrpay_tools.cluster up

cluster-stop: $(STAMP)
	$(BIN)/python -m qrpay_tools.cluster down

# supervisorctl on the cluster: ARGS=status (the default), ARGS="restart eda", ARGS="tail -f eda".
cluster-ctl: $(STAMP)
	$(BIN)/python -m qrpay_tools.cluster ctl $(or $(ARGS),status)

# deploy/kubernetes/ and the payment units' systemd priority files from their description
# (tools/qrpay_tools/deploy.py); tests/deploy checks
# that the committed files are what it writes.
deploy-manifests: $(STAMP)
	$(BIN)/python -m qrpay_tools.deploy

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
