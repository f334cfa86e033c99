# The two commands: `make main` (the main job, end to end) and `make test` (the whole suite).
# Both set up everything they need first (uv, the locked venv, jars, Airflow DB).
.PHONY: setup main test lint unit bench clean

PY := .venv/bin/python

setup:
	@bash infra/setup.sh

main: setup
	@.venv/bin/cryptolake run main

lint: setup
	.venv/bin/ruff check .
	.venv/bin/mypy cryptolake ingest infra spark_jobs models trader research pipeline api dags cli
	.venv/bin/lint-imports

unit: setup
	.venv/bin/pytest -m "not spark and not kafka and not airflow" -q

test: setup
	.venv/bin/ruff check .
	.venv/bin/mypy cryptolake ingest infra spark_jobs models trader research pipeline api dags cli
	.venv/bin/lint-imports
	.venv/bin/pytest -q --durations=40; rc=$$?; .venv/bin/cryptolake stack down >/dev/null 2>&1 || true; exit $$rc

# Benchmarks need the peers (vectorbt, backtesting.py, nautilus_trader...): a bench-only dependency group,
# never installed by `make setup`. Run one with `make bench B=bench/bench_backtest.py`.
bench: setup
	PATH="$$PWD/.state/tools/bin:$$PATH" uv sync --frozen --quiet --group bench
	.venv/bin/python $(B)

clean:
	.venv/bin/cryptolake stack down || true
	rm -rf .state/lake .state/checkpoints .state/artifacts
