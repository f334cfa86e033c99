"""Running Structured Streaming queries until told to stop, and stopping them between batches.

``query.stop()`` interrupts a micro-batch that is running; that is safe (every sink here is
idempotent: Delta txn ids or MERGE, and the checkpoint replays the batch) but wasteful, and the
process convention asks for a clean stop after the current unit of work. So each query's
``foreachBatch`` body holds a lock while it works, and :func:`stop_between_batches` waits for the
lock to be free and the trigger idle before stopping the query.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptolake.logs import get_logger
from spark_jobs.delta_io import translate_spark_error

if TYPE_CHECKING:
    from pyspark.sql.streaming import StreamingQuery

log = get_logger(__name__)


@dataclass(frozen=True)
class RunningQuery:
    """A started query and the lock its batch body holds while it runs."""

    name: str
    query: StreamingQuery
    busy: threading.Lock


def stop_between_batches(running: RunningQuery, timeout_s: float = 120.0) -> None:
    """Stop ``running.query`` once no batch is in progress (or after ``timeout_s``, interrupting it)."""
    deadline = time.monotonic() + timeout_s
    query = running.query
    while time.monotonic() < deadline and query.isActive:
        # Never stop while holding the lock: a batch starting meanwhile would wait on it in Python
        # while stop() waits for that batch's thread.
        if running.busy.acquire(timeout=0.5):
            running.busy.release()
            if not running.busy.locked() and not query.status.get("isTriggerActive", False):
                query.stop()
                break
        time.sleep(0.05)
    else:
        if query.isActive:
            log.warning("stream.stop_timeout", extra={"query": running.name, "timeout_s": timeout_s})
            query.stop()
    log.info("stream.stopped", extra={"query": running.name})


def run_until_stopped(queries: Sequence[RunningQuery], stop: threading.Event, poll_s: float = 1.0) -> None:
    """Wait until ``stop`` is set (then stop every query between batches) or a query fails (then raise).

    A query that failed raises its error translated (:func:`translate_spark_error`) after the
    others were stopped, so the process exits non-zero and its supervisor restarts it.
    """
    failed: tuple[str, BaseException] | None = None
    while not stop.wait(poll_s):
        for rq in queries:
            if not rq.query.isActive:
                error: BaseException | None = rq.query.exception()
                failed = (rq.name, error if error is not None else RuntimeError("query ended"))
                break
        if failed:
            break
    for rq in queries:
        if rq.query.isActive:
            stop_between_batches(rq)
    if failed:
        name, error = failed
        raise translate_spark_error(error, f"streaming query {name}")
