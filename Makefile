# Callcard: `make run` starts the product with embedded defaults, `make test` runs the suite.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Most tests wait at human speed (a call rings for seconds): two workers fill two cores.
TEST_WORKERS ?= 2
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
UI_STAMP := ui/dist/.built

.PHONY: run test bench lint typecheck system-deps ui clean

$(STAMP): pyproject.toml
	@echo "==> Python packages into $(VENV) (first run: about 2 minutes)"
	@command -v $(PYTHON) >/dev/null || PYTHON=python3; $${PYTHON:-$(PYTHON)} -m venv $(VENV) 2>/dev/null || python3 -m venv $(VENV)
	@$(BIN)/pip install -q --upgrade pip
	@$(BIN)/pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-*; touch $@

venv: $(STAMP)

system-deps:
	@scripts/ensure-system-packages.sh

ui: $(UI_STAMP)

$(UI_STAMP): $(shell find ui -path ui/node_modules -prune -o -path ui/dist -prune -o -type f -print 2>/dev/null)
	@scripts/check-node.sh
	@echo "==> Building the web app (ui/, first run: about 1 minute)"
	@cd ui && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent && touch dist/.built

run: $(STAMP) ui
	$(BIN)/callcard run

# The suite starts its own PostgreSQL and Redis unless CALLCARD_TEST_PG_URL /
# CALLCARD_TEST_REDIS_URL name servers to use.
test: system-deps $(STAMP) ui
	@echo "==> Test suite, $(TEST_WORKERS) workers side by side (each test is named as it ends)"
	$(BIN)/python -m pytest -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -v --durations=25 $(PYTEST_ARGS)

bench: system-deps $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider tests/bench -s $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy crm_api telephony sms_gateway

clean:
	rm -rf $(VENV) ui/node_modules ui/dist var
