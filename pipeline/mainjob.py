"""The main job: run the market pipeline DAG over the embedded history, then summarise.

Sets up what it needs (jars, broker, Airflow DB), runs ``dags/market_pipeline.py`` through
Airflow's ``dag.test()`` for one data interval, checks that row counts reconcile, prints a
summary and writes an HTML report, and stops every process it started.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptolake.errors import CryptolakeError, InfrastructureError
from cryptolake.logs import get_logger
from cryptolake.settings import Settings, get_settings

log = get_logger(__name__)

DEFAULT_START = "2017-10-01T00:00:00+00:00"
DEFAULT_END = "2019-10-02T00:00:00+00:00"


@dataclass(frozen=True)
class MainJobResult:
    """Where the outputs are and how long it took."""

    summary: dict[str, Any]
    summary_path: Path
    report_path: Path
    seconds: float


def task_results_dir(settings: Settings, start: str, end: str) -> Path:
    """Where each task of an interval writes its JSON result (read back for the summary)."""
    from pipeline.market import Interval, main_artifacts

    return main_artifacts(settings, Interval.parse(start, end))


def run_dag(start: str, end: str, settings: Settings, *, trade: bool = True) -> str:
    """Run the market pipeline DAG once through Airflow (``dag.test``); return the run state."""
    from infra.airflow_home import airflow_env

    os.environ.update(airflow_env(settings))
    sys.path.insert(0, str(settings.airflow.dags_folder))
    from market_pipeline import market_pipeline_dag

    logical = datetime.fromisoformat(start).astimezone(UTC)
    run = market_pipeline_dag.test(
        logical_date=logical,
        run_conf={"interval_start": start, "interval_end": end, "trade": trade},
    )
    state = str(getattr(run, "state", "unknown"))
    log.info("mainjob.dag_finished", extra={"state": state})
    return state


def run_main(
    settings: Settings | None = None,
    *,
    start: str = DEFAULT_START,
    end: str = DEFAULT_END,
    keep_broker: bool = False,
) -> MainJobResult:
    """Run the whole flow and return the summary; raises if any step or reconciliation fails."""
    from infra import broker
    from pipeline.report import build_summary, print_summary, write_report
    from spark_jobs.session import stop_spark

    settings = settings or get_settings()
    t0 = time.monotonic()
    was_running = broker.status(settings) is not None
    info = broker.start(settings)
    log.info("mainjob.broker", extra={"bootstrap": info.bootstrap, "reused": was_running})
    try:
        state = run_dag(start, end, settings)
        if "success" not in state:
            raise CryptolakeError(f"market_pipeline DAG run ended in state {state}; see the task logs above")
        results = load_task_results(settings, start, end)
        summary = build_summary(results, settings, start, end)
        summary["seconds"] = round(time.monotonic() - t0, 1)
        out_dir = task_results_dir(settings, start, end)
        summary_path = out_dir / "summary.json"
        summary_path.write_text(json.dumps(summary, indent=2, default=str))
        report_path = write_report(results, summary, out_dir / "report.html", settings)
        print_summary(summary, report_path)
        return MainJobResult(summary, summary_path, report_path, summary["seconds"])
    finally:
        stop_spark()
        if not was_running and not keep_broker:
            broker.stop(settings)


def load_task_results(settings: Settings, start: str, end: str) -> dict[str, dict[str, Any]]:
    """The JSON result of every task of the interval's last run."""
    folder = task_results_dir(settings, start, end)
    out: dict[str, dict[str, Any]] = {}
    for name in ("ingest", "land", "silver", "gold", "train", "score", "trade"):
        path = folder / f"{name}.json"
        if not path.exists():
            raise InfrastructureError(f"task {name} left no result at {path}")
        out[name] = json.loads(path.read_text())
    return out


def reset_state(settings: Settings | None = None) -> None:
    """Delete the lake, checkpoints, artifacts and trading store, and the pipeline's Kafka topics."""
    import shutil

    from cryptolake import topics
    from cryptolake.bus import delete_topics
    from infra import broker

    settings = settings or get_settings()
    for path in (settings.paths.lake(), settings.paths.checkpoints(), str(settings.paths.artifacts_dir),
                 str(settings.paths.state_dir / "trader")):
        if "://" in path:
            raise InfrastructureError(f"--fresh only deletes local folders, not {path}")
        shutil.rmtree(path, ignore_errors=True)
    was_running = broker.status(settings) is not None
    broker.start(settings)
    try:
        names = [topics.MARKET_OHLCV, topics.SIGNALS, topics.TRADER_EVENTS]
        delete_topics([*names, *(topics.dlq(n) for n in names)], settings)
    finally:
        if not was_running:
            broker.stop(settings)
    log.info("mainjob.reset", extra={"lake": settings.paths.lake()})
