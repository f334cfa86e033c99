# The two commands: `make main` (the main job, end to end) and `make test` (the whole suite).
# Both set up everything they need first (uv, the locked venv, jars, Airflow DB).
.PHONY: setup main test lint unit bench clean

PY := .venv/bin/python
# pytest-xdist workers of `make test`: each has its own state folder, broker and Airflow DB (tests/conftest.py);
# a whole test file runs on one worker, so module fixtures are built once
WORKERS ?= 2
STACK_DOWN = .venv/bin/cryptolake stack down >/dev/null 2>&1 || true; \
	for d in .state/xdist/*/; do [ -d "$$d" ] && CRYPTOLAKE__PATHS__STATE_DIR="$$d" .venv/bin/cryptolake stack down >/dev/null 2>&1; done; true

setup:
	@bash infra/setup.sh

main: setup
	@.venv/bin/cryptolake run main

lint: setup
	.venv/bin/ruff check .
	.venv/bin/mypy cryptolake ingest infra spark_jobs models trader research pipeline api dags cli
	.venv/bin/lint-imports

unit: setup
	.venv/bin/pytest -m "not spark and not kafka and not airflow" -q -n $(WORKERS) --dist loadfile

test: setup
	.venv/bin/ruff check .
	.venv/bin/mypy cryptolake ingest infra spark_jobs models trader research pipeline api dags cli
	.venv/bin/lint-imports
	.venv/bin/pytest -q --durations=40 -n $(WORKERS) --dist loadfile; rc=$$?; $(STACK_DOWN); exit $$rc

# Benchmarks need the peers (vectorbt, backtesting.py, nautilus_trader...): a bench-only dependency group,
# never installed by `make setup`. Run one with `make bench B=bench/bench_backtest.py`.
bench: setup
	PATH="$$PWD/.state/tools/bin:$$PATH" uv sync --frozen --quiet --group bench
	.venv/bin/python $(B)

clean:
	.venv/bin/cryptolake stack down || true
	rm -rf .state/lake .state/checkpoints .state/artifacts
