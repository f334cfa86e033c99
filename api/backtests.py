"""Backtests started from the dashboard: one at a time, in a worker thread, over the lake's bars.

A job runs :func:`pipeline.backtest.run_lake_backtest` (the same node as ``cryptolake backtest``) and
stores its run in the trading store the API reads, so it is listed with every other backtest; its
tearsheet is the HTML the pipeline writes under ``artifacts_dir/backtests/<run_id>/``. Jobs are kept in
memory (the runs and tearsheets they produce persist); a failed job keeps its error.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptolake.errors import ConfigError
from cryptolake.logs import get_logger
from cryptolake.settings import Settings
from trader.config import TraderConfig

log = get_logger(__name__)


class BacktestBusyError(ConfigError):
    """A backtest is already running (the machine is shared: one at a time)."""


@dataclass
class BacktestJob:
    id: str
    requested_by: str
    strategy: str
    symbols: list[str]
    started_at: datetime
    status: str = "running"
    finished_at: datetime | None = None
    run_id: str | None = None
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)


class BacktestJobs:
    """The dashboard's backtest jobs (thread safe)."""

    def __init__(self, settings: Settings, store_url: str) -> None:
        self.settings, self.store_url = settings, store_url
        self.jobs: dict[str, BacktestJob] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self, config: TraderConfig, start: datetime | None, end: datetime | None, user: str) -> BacktestJob:
        """Start ``config`` in the background; :class:`BacktestBusyError` while another one runs."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                running = next((j.id for j in self.jobs.values() if j.status == "running"), "?")
                raise BacktestBusyError(f"backtest {running} is still running; one runs at a time")
            job = BacktestJob(uuid.uuid4().hex[:12], user, config.strategies[0].kind, list(config.symbols),
                              datetime.now(UTC))
            self.jobs[job.id] = job
            self._thread = threading.Thread(target=self._run, args=(job, config, start, end), daemon=True,
                                            name=f"backtest-{job.id}")
            self._thread.start()
        return job

    def _run(self, job: BacktestJob, config: TraderConfig, start: datetime | None, end: datetime | None) -> None:
        from pipeline.backtest import run_lake_backtest

        try:
            run = run_lake_backtest(config, start=start, end=end, settings=self.settings, store_url=self.store_url)
            job.run_id = run.result.run_id
            job.metrics = {k: float(v) for k, v in run.result.metrics.items() if isinstance(v, int | float)}
            job.status = "finished"
        except Exception as exc:  # a worker thread's boundary: the job keeps the error, the API stays up
            job.status, job.error = "failed", f"{type(exc).__name__}: {exc}"[:1000]
            log.warning("backtest.failed", extra={"job": job.id, "error": job.error})
        finally:
            job.finished_at = datetime.now(UTC)

    def wait(self, timeout: float | None = None) -> None:
        """Block until the running job (if any) is done (tests, shutdown)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def listed(self) -> list[BacktestJob]:
        return sorted(self.jobs.values(), key=lambda j: j.started_at, reverse=True)

    def tearsheet(self, run_id: str) -> Path | None:
        """The run's tearsheet file, if the pipeline wrote one (``run_id`` cannot leave the folder)."""
        root = (self.settings.paths.artifacts_dir / "backtests").resolve()
        path = (root / run_id / "tearsheet.html").resolve()
        if path.parent.parent != root or not path.is_file():
            return None
        return path

    def as_row(self, job: BacktestJob) -> dict[str, Any]:
        return dict(vars(job))
