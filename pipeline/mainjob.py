"""The main job's pipeline side: where its tasks leave their results, and a fresh start.

``cli.mainjob`` runs the ``market_pipeline`` DAG over the embedded history and summarises it
with :mod:`pipeline.report`; this module reads the tasks' results back and resets the state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptolake.errors import InfrastructureError
from cryptolake.logs import get_logger
from cryptolake.settings import Settings, get_settings

log = get_logger(__name__)


def task_results_dir(settings: Settings, start: str, end: str) -> Path:
    """Where each task of an interval writes its JSON result (read back for the summary)."""
    from pipeline.interval import Interval, run_dir

    return run_dir(settings, Interval.parse(start, end))


def load_task_results(settings: Settings, start: str, end: str) -> dict[str, dict[str, Any]]:
    """The JSON result of every task of the interval's last run."""
    from pipeline.market import TASKS

    folder = task_results_dir(settings, start, end)
    out: dict[str, dict[str, Any]] = {}
    for name in TASKS:
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
