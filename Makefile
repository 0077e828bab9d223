# The two commands of the README:
#   make demo   set up and run the service with simulated residents and agents (SQLite, embedded queues)
#   make test   set up and pass all tests (lint, types, unit and integration tests)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never

.PHONY: setup demo serve test lint bench bench-sla bench-kennisbank evaluate clean

$(BIN)/kcc: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(BIN)/kcc

# axe-core (npm) for the browser tests' accessibility check; nothing of it is served. Installed
# once from the lockfile (npm's cache first); without npm the check says so (and fails in CI).
node_modules/axe-core/axe.min.js: package.json package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  npm ci --prefer-offline --no-audit --no-fund --ignore-scripts --loglevel=error && touch $@; \
	else echo "npm not found: the browser tests' accessibility check cannot run"; fi

setup: $(BIN)/kcc node_modules/axe-core/axe.min.js
	@bash scripts/install-system-packages.sh

demo: setup
	$(BIN)/kcc demo

serve: setup
	$(BIN)/kcc serve

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

bench: setup
	$(BIN)/python bench/foundation.py

# SLA timer sweep with 1,000,000 open contacts on SQLite and PostgreSQL (a few minutes).
bench-sla: setup
	$(BIN)/python bench/sla_sweep.py

bench-kennisbank: setup
	$(BIN)/python bench/kennisbank_search.py

evaluate: setup
	$(BIN)/python scripts/evaluate_routing.py
	$(BIN)/python scripts/evaluate_routing.py --dataset tests/fixtures/eval/questions-heldout.tsv

clean:
	rm -rf $(VENV) node_modules data .pytest_cache .mypy_cache .ruff_cache *.egg-info
