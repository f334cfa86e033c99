"""The continuous pipeline: landing, silver+gold and the scorer as streaming queries, until stopped.

Each function starts its Structured Streaming queries on the process's one SparkSession (several
topics, or several stages, share one driver), records every micro-batch in :class:`StreamMetrics`
and returns when ``stop`` is set (each query stopped between batches) or raises when a query
fails. Exactly once is the batch jobs' own: the same checkpoints and the same idempotent writes
(Delta txn ids for bronze, MERGE for silver, gold and signals), so a SIGKILL at any point and a
restart lose and double nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from cryptolake.logs import get_logger
from cryptolake.settings import Settings
from cryptolake.types import TIMEFRAME_MS
from pipeline.stream_metrics import StreamMetrics
from spark_jobs.streaming import RunningQuery, run_until_stopped

if TYPE_CHECKING:
    from models.registry import ModelRegistry

log = get_logger(__name__)


def landing_queries(topic_names: Sequence[str], settings: Settings, *, trigger_seconds: float,
                    metrics: StreamMetrics | None = None,
                    max_offsets_per_trigger: int | None = None) -> list[RunningQuery]:
    """Start one continuous landing query per topic (``spark_jobs.bronze.landing.start_landing``)."""
    from spark_jobs.bronze.landing import BatchReport, start_landing

    def on_batch(report: BatchReport) -> None:
        if metrics is not None:
            metrics.batch(f"land:{report.topic}", report.seconds, time.time())
            metrics.landed(report.topic, report.landed, report.quarantined)

    running: list[RunningQuery] = []
    for topic in topic_names:
        query, busy = start_landing(topic, trigger_seconds=trigger_seconds, settings=settings, on_batch=on_batch,
                                    max_offsets_per_trigger=max_offsets_per_trigger)
        running.append(RunningQuery(f"land:{topic}", query, busy))
        log.info("stream.land_started", extra={"topic": topic, "trigger_s": trigger_seconds})
    return running


def run_queries(running: list[RunningQuery], stop: threading.Event) -> None:
    """Block until ``stop`` (queries stopped between batches) or a query fails (raised, translated)."""
    run_until_stopped(running, stop)


def features_queries(settings: Settings, *, trigger_seconds: float,
                     metrics: StreamMetrics | None = None) -> list[RunningQuery]:
    """Start the incremental silver+gold query (``spark_jobs.gold.incremental.start_features``)."""
    from spark_jobs.gold.incremental import FeaturesReport, start_features

    def on_batch(report: FeaturesReport) -> None:
        if metrics is not None:
            metrics.batch("features", report.seconds, time.time())
            metrics.rows_written.labels("gold").inc(report.feature_rows)
            for stage, seconds in report.latency_s.items():
                metrics.latencies(stage, seconds)

    query, busy = start_features(trigger_seconds=trigger_seconds, settings=settings, on_batch=on_batch)
    log.info("stream.features_started", extra={"trigger_s": trigger_seconds})
    return [RunningQuery("features", query, busy)]


def resolve_model(model_version: str, registry_dir: str | None, settings: Settings) -> tuple[str, ModelRegistry]:
    """``champion`` (the registry's current champion) or a version, and the registry it is in.

    The registry defaults to the configured market's (:func:`pipeline.training.market_registry`).
    """
    from pathlib import Path

    from models.registry import ModelRegistry
    from pipeline.training import market_registry

    registry = ModelRegistry(Path(registry_dir)) if registry_dir else market_registry(settings)
    version = registry.champion().version if model_version == "champion" else model_version
    return version, registry


def scorer_queries(model_version: str, registry: ModelRegistry, settings: Settings, *, trigger_seconds: float,
                   metrics: StreamMetrics | None = None) -> tuple[list[RunningQuery], Callable[[], None]]:
    """Start the continuous scorer (``pipeline.scorer.start_scorer``); returns it and the producer's close.

    A model that failed the champion gate starts no query (it never publishes): the list is empty.
    """
    import pandas as pd

    from pipeline.scorer import start_scorer

    def on_batch(scores: pd.DataFrame, published_at: float, seconds: float) -> None:
        if metrics is not None:
            close = scores["bar_time"] + pd.to_timedelta(scores["timeframe"].map(TIMEFRAME_MS), unit="ms")
            metrics.batch("score", seconds, time.time())
            metrics.rows_written.labels("signal").inc(len(scores))
            metrics.latencies("signal", [published_at - c.timestamp() for c in close])

    query, busy, result, close = start_scorer(model_version, trigger_seconds=trigger_seconds, settings=settings,
                                              registry=registry, on_batch=on_batch)
    if query is None:
        log.warning("stream.scorer_refused", extra={"model_version": model_version, "reason": result.refused})
        return [], close
    log.info("stream.scorer_started", extra={"model_version": model_version, "trigger_s": trigger_seconds})
    return [RunningQuery(f"score:{model_version}", query, busy)], close
