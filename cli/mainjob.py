"""The main job: run the market pipeline DAG over the embedded history, then summarise.

Sets up what it needs (broker), runs ``<dags_folder>/market_pipeline.py`` through Airflow's
``dag.test()`` for one data interval, checks that row counts reconcile, prints a summary and
writes an HTML report, and stops every process it started. The DAG is parsed by Airflow's own
``DagBag`` from its file, as the DAG processor would, so nothing is put on ``sys.path``.
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

from cryptolake.errors import ConfigError, CryptolakeError
from cryptolake.logs import NATIVE_LOG_ENV, get_logger, native_output_to, quiet_libraries
from cryptolake.settings import Settings, get_settings

log = get_logger(__name__)

MAIN_DAG_ID = "market_pipeline"
DEFAULT_START = "2017-10-01T00:00:00+00:00"
DEFAULT_END = "2019-10-02T00:00:00+00:00"


@dataclass(frozen=True)
class MainJobResult:
    """Where the outputs are and how long it took."""

    summary: dict[str, Any]
    summary_path: Path
    report_path: Path
    seconds: float


def load_dag(dag_id: str, settings: Settings) -> Any:
    """The DAG ``dag_id`` parsed from ``<dags_folder>/<dag_id>.py`` by Airflow's ``DagBag``.

    Airflow's environment (home, metadata DB) must be set first: see :func:`run_dag`.
    """
    from airflow.dag_processing.dagbag import DagBag

    path = settings.airflow.dags_folder / f"{dag_id}.py"
    if not path.is_file():
        raise ConfigError(f"DAG file {path} not found (CRYPTOLAKE__AIRFLOW__DAGS_FOLDER)")
    bag = DagBag(dag_folder=path, safe_mode=False)
    if bag.import_errors:
        raise ConfigError(f"DAG file {path} does not import: {bag.import_errors}")
    if dag_id not in bag.dags:
        raise ConfigError(f"DAG file {path} defines {sorted(bag.dags)}, not {dag_id!r}")
    return bag.dags[dag_id]


def run_dag(start: str, end: str, settings: Settings) -> str:
    """Run the market pipeline DAG once through Airflow (``dag.test``); return the run state."""
    from infra.airflow_home import airflow_env

    os.environ.update(airflow_env(settings))
    dag = load_dag(MAIN_DAG_ID, settings)
    logical = datetime.fromisoformat(start).astimezone(UTC)
    run = dag.test(
        logical_date=logical,
        run_conf={"interval_start": start, "interval_end": end},
    )
    state = str(getattr(run, "state", "unknown"))
    log.info("mainjob.dag_finished", extra={"state": state})
    return state


def timing_line(results: dict[str, dict[str, Any]], setup_s: float, total_s: float) -> str:
    """``timing: ingest 12 s | land 40 s | ... | steps 300 s (+ set-up 20 s, total 330 s)``."""
    steps = {name: float(r.get("seconds", 0.0)) for name, r in results.items()}
    cpu = sum(float(r.get("cpu_seconds", 0.0)) for r in results.values())
    parts = " | ".join(f"{name} {s:.1f} s" for name, s in steps.items())
    return (f"timing: {parts} | steps {sum(steps.values()):.1f} s ({cpu:.0f} CPU s) "
            f"(+ broker set-up {setup_s:.1f} s, Airflow and summary; total {total_s:.1f} s)")


def run_main(
    settings: Settings | None = None,
    *,
    start: str = DEFAULT_START,
    end: str = DEFAULT_END,
    keep_broker: bool = False,
) -> MainJobResult:
    """Run the whole flow and return the summary; raises if any step or reconciliation fails.

    The console shows progress bars and the summary; everything else (Spark's JVM, Airflow's task
    logs, library output) goes to ``<state>/logs/main.log``.
    """
    settings = settings or get_settings()
    log_path = settings.paths.state_dir / "logs" / "main.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text("")
    print(f"main job: full log (JVM, Airflow, libraries) in {log_path}", file=sys.stderr, flush=True)
    os.environ[NATIVE_LOG_ENV] = str(log_path)
    try:
        with native_output_to(log_path):
            return _run_main(settings, start, end, keep_broker, log_path)
    finally:
        os.environ.pop(NATIVE_LOG_ENV, None)


def _run_main(settings: Settings, start: str, end: str, keep_broker: bool, log_path: Path) -> MainJobResult:
    from infra import broker
    from pipeline.mainjob import load_task_results, task_results_dir
    from pipeline.report import build_summary, print_summary, write_report
    from spark_jobs.session import stop_spark

    quiet_libraries()
    t0 = time.monotonic()
    was_running = broker.status(settings) is not None
    info = broker.start(settings)
    setup_s = time.monotonic() - t0
    log.info("mainjob.broker", extra={"bootstrap": info.bootstrap, "reused": was_running})
    try:
        state = run_dag(start, end, settings)
        if "success" not in state:
            raise CryptolakeError(f"market_pipeline DAG run ended in state {state}; see the task logs in {log_path}")
        results = load_task_results(settings, start, end)
        summary = build_summary(results, settings, start, end)
        summary["seconds"] = round(time.monotonic() - t0, 1)
        out_dir = task_results_dir(settings, start, end)
        summary_path = out_dir / "summary.json"
        summary_path.write_text(json.dumps(summary, indent=2, default=str))
        report_path = write_report(results, summary, out_dir / "report.html", settings)
        print_summary(summary, report_path)
        print(timing_line(results, setup_s, summary["seconds"]), file=sys.stderr, flush=True)
        return MainJobResult(summary, summary_path, report_path, summary["seconds"])
    finally:
        stop_spark()
        if not was_running and not keep_broker:
            broker.stop(settings)
