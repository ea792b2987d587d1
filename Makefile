# Callcard: `make run` starts the product with embedded defaults, `make test` runs the suite.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
UI_STAMP := ui/dist/.built

.PHONY: run test bench lint typecheck system-deps test-peers ui clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || PYTHON=python3; $${PYTHON:-$(PYTHON)} -m venv $(VENV) 2>/dev/null || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*; touch $@

venv: $(STAMP)

system-deps:
	@scripts/ensure-system-packages.sh

ui: $(UI_STAMP)

$(UI_STAMP): $(shell find ui -path ui/node_modules -prune -o -path ui/dist -prune -o -type f -print 2>/dev/null)
	@if [ -f ui/package.json ]; then \
		cd ui && npm ci --no-audit --no-fund --loglevel=error && npm run build && touch dist/.built; \
	else mkdir -p ui/dist && touch $@; fi

run: $(STAMP) ui
	$(BIN)/callcard run

test-peers:
	@scripts/test-peers.sh

test: system-deps $(STAMP) ui test-peers
	$(BIN)/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

bench: system-deps $(STAMP) test-peers
	$(BIN)/python -m pytest -p no:cacheprovider tests/bench -s $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy crm_api telephony sms_gateway

clean:
	rm -rf $(VENV) ui/node_modules ui/dist var
