"""The streaming scorer: new gold feature rows in, ``signals`` (Kafka) and ``gold.signals`` (Delta) out.

A Spark Structured Streaming query reads ``gold.features`` as a Delta stream (so bars are
scored as they arrive, whether one bar or a backfill lands), and in ``foreachBatch`` scores
every new bar that completes a window with a model loaded by version from the registry
(``models.scoring.score_frame``, the same code backtests use; only the ``Model`` protocol is
used, never a concrete class). Each score is published to ``signals`` as a validated
``SignalV1`` and MERGEd into ``gold.signals`` on its ``signal_id``.

Idempotence: one checkpoint per model version, so a re-run scores nothing twice; and when bars
are scored again anyway (a replayed micro-batch, a lost checkpoint), each gets the same
``signal_id`` (model version + bar key): Kafka carries the same ids again, which consumers skip,
and the MERGE adds no duplicate row. A model never scores bars before its out-of-sample start.

The champion gate: a model registered as failing it (it did not beat every naive baseline and the
champion out of sample) never trades. The scorer publishes nothing for it and says why in its
result (``refused``) and log.

It lives in ``pipeline`` because it composes Spark jobs with the model registry: ``spark_jobs``
and ``models`` are independent layers and never import each other.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from cryptolake import topics
from cryptolake.bus import Producer, ensure_topics
from cryptolake.errors import DataValidationError
from cryptolake.logs import get_logger
from cryptolake.schemas import SignalV1
from cryptolake.settings import Settings, get_settings
from cryptolake.tables import BAR_STAGES, GOLD_FEATURES, SIGNALS_TABLE
from cryptolake.types import TIMEFRAME_MS, to_ms
from models.base import Model
from models.registry import ModelRegistry

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.streaming import StreamingQuery

log = get_logger(__name__)


@dataclass
class ScoreResult:
    """What the scorer did (``inserted`` = rows new to gold.signals; a re-score inserts none)."""

    model_version: str
    batches: int = 0
    scored: int = 0
    published: int = 0
    inserted: int = 0
    up_signals: int = 0
    first_bar: str | None = None
    last_bar: str | None = None
    per_symbol: dict[str, int] = field(default_factory=dict)
    refused: str | None = None  # why nothing was published (the model failed the champion gate)


def gate_refusal(registry: ModelRegistry, model_version: str) -> str | None:
    """Why ``model_version`` may not publish signals (it failed the champion gate), or None if it may."""
    ok, why = registry.entry(model_version).may_trade
    return None if ok else f"model {model_version} failed the champion gate: {why}"


def signal_messages(scores: pd.DataFrame) -> list[SignalV1]:
    """Scores (``models.scoring.score_frame``'s frame) -> validated ``SignalV1`` messages.

    A signal is available at the scored bar's close.
    """
    out: list[SignalV1] = []
    for row in scores.to_dict(orient="records"):
        bar_ms = to_ms(pd.Timestamp(row["bar_time"]).to_pydatetime())
        close_ms = bar_ms + TIMEFRAME_MS[str(row["timeframe"])]
        out.append(
            SignalV1(
                schema_version=SignalV1.SCHEMA_VERSION,
                signal_id=str(row["signal_id"]),
                exchange=str(row["exchange"]),
                symbol=str(row["symbol"]),
                timeframe=str(row["timeframe"]),
                probability=float(row["probability"]),
                direction=int(row["direction"]),  # type: ignore[arg-type]
                model_version=str(row["model_version"]),
                event_time=bar_ms,
                available_time=close_ms,
                ingest_time=close_ms,
            )
        )
    return out


def scorer_checkpoint(settings: Settings, model_version: str) -> str:
    """The streaming checkpoint of one model version's scorer."""
    return f"{settings.paths.checkpoints().rstrip('/')}/scorer/{model_version}"


def check_out_of_sample(model: Model, score_from: datetime) -> None:
    """Refuse to score bars the model may have learnt from (before its held-out test segment)."""
    if score_from < model.oos_start:
        raise DataValidationError(
            "score_from", score_from.isoformat(),
            f"is before model {model.model_version}'s out-of-sample start {model.oos_start.isoformat()}",
        )


@dataclass
class _Scoring:
    """One scorer's loaded model, producer and running result (shared by the batch and continuous runs)."""

    model: Model
    result: ScoreResult
    producer: Producer | None
    refused: str | None
    query_id: str = ""
    ready: threading.Event = field(default_factory=threading.Event)
    busy: threading.Lock = field(default_factory=threading.Lock)


def _prepare(model: Model, settings: Settings, registry: ModelRegistry) -> _Scoring:
    from spark_jobs.delta_io import ensure_table
    from spark_jobs.session import get_spark

    model_version = model.model_version
    refused = gate_refusal(registry, model_version)
    spark = get_spark(settings)
    ensure_topics([topics.SIGNALS], settings)
    ensure_table(spark, SIGNALS_TABLE, settings)
    if refused is not None:
        log.warning("scorer.refused", extra={"model_version": model_version, "reason": refused})
        return _Scoring(model, ScoreResult(model_version=model_version, refused=refused), None, refused)
    producer = Producer(settings, client_id="cryptolake-scorer")
    return _Scoring(model, ScoreResult(model_version=model_version), producer, None)


def _score_handler(sc: _Scoring, settings: Settings, *, stamp: bool = False,
                   on_batch: Callable[[pd.DataFrame, float, float], None] | None = None
                   ) -> Callable[[DataFrame, int], None]:
    """The foreachBatch body: score the batch's new bars, publish, MERGE into gold.signals.

    ``stamp``: also record each bar's ``signal`` stage (published and acknowledged) in ops.bar_stages;
    ``on_batch(scores, published_at, seconds)`` is called after each batch that scored bars.
    """
    from pyspark.sql import functions as F

    from cryptolake.stages import stage_rows
    from models.scoring import score_frame
    from spark_jobs.delta_io import date_filter, merge_rows
    from spark_jobs.session import get_spark
    from spark_jobs.stages import append_stages

    spark = get_spark(settings)
    model, result, producer = sc.model, sc.result, sc.producer
    assert producer is not None
    window = model.window
    features_path = GOLD_FEATURES.path(settings)
    context_cols = ["exchange", "symbol", "timeframe", "ts", *model.feature_columns]

    def score_batch(batch: DataFrame, batch_id: int) -> None:
        sc.ready.wait(timeout=60)
        with sc.busy:
            _score(batch, batch_id)

    def _score(batch: DataFrame, batch_id: int) -> None:
        t0 = time.monotonic()
        new = batch.select("exchange", "symbol", "timeframe", "ts").toPandas()
        if new.empty:
            return
        new["ts"] = pd.to_datetime(new["ts"], utc=True)
        lo = new["ts"].min() - timedelta(milliseconds=TIMEFRAME_MS[str(new["timeframe"].iloc[0])] * (window + 1))
        hi = new["ts"].max()
        context = (
            spark.read.format("delta").load(features_path)
            .where((F.col("ts") >= F.lit(lo.to_pydatetime())) & (F.col("ts") <= F.lit(hi.to_pydatetime())))
            .select(*context_cols).toPandas()
        )
        context["ts"] = pd.to_datetime(context["ts"], utc=True)
        scores = score_frame(model, context)
        keys = new.rename(columns={"ts": "bar_time"})
        scores = scores.merge(keys, on=["exchange", "symbol", "timeframe", "bar_time"], how="inner")
        scores = scores.sort_values(["bar_time", "symbol"]).reset_index(drop=True)
        if scores.empty:
            return
        for msg in signal_messages(scores):
            producer.send_message(msg)
        producer.flush()
        published_at = time.time()
        if stamp:
            bars = scores.rename(columns={"bar_time": "ts"})
            append_stages(spark, stage_rows(bars, "signal", pd.Timestamp(published_at, unit="s", tz="UTC")),
                          f"{BAR_STAGES.name}:scorer:{result.model_version}:{sc.query_id}", batch_id, settings)
        rows = scores.assign(
            available_time=scores["bar_time"] + pd.to_timedelta(scores["timeframe"].map(TIMEFRAME_MS), unit="ms"),
            bar_date=scores["bar_time"].dt.date,
        )
        sdf = spark.createDataFrame(rows).select(*SIGNALS_TABLE.column_names)
        first, last = scores["bar_time"].min(), scores["bar_time"].max()
        days = date_filter("t.bar_date", first.to_pydatetime(), last.to_pydatetime())
        merged = merge_rows(spark, sdf, SIGNALS_TABLE, target_filter=days, settings=settings)
        result.batches += 1
        result.scored += len(scores)
        result.published += len(scores)
        result.inserted += merged["inserted"]
        result.up_signals += int(scores["direction"].sum())
        for sym, n in scores.groupby("symbol").size().items():
            result.per_symbol[str(sym)] = result.per_symbol.get(str(sym), 0) + int(n)
        result.first_bar = min(result.first_bar or first.isoformat(), first.isoformat())
        result.last_bar = max(result.last_bar or last.isoformat(), last.isoformat())
        log.info("scorer.batch", extra={"batch_id": batch_id, "scored": len(scores),
                                        "model_version": result.model_version})
        if on_batch is not None:
            on_batch(scores, published_at, time.monotonic() - t0)

    return score_batch


def _start(sc: _Scoring, handler: Callable[[DataFrame, int], None], settings: Settings, score_from: datetime,
           score_until: datetime | None, trigger: dict[str, Any]) -> StreamingQuery:
    from pyspark.sql import functions as F

    from spark_jobs.session import get_spark

    spark = get_spark(settings)
    stream = (spark.readStream.format("delta").option("skipChangeCommits", "true")
              .load(GOLD_FEATURES.path(settings)).where(F.col("ts") >= F.lit(score_from)))
    if score_until is not None:
        stream = stream.where(F.col("ts") < F.lit(score_until))
    query = (
        stream.writeStream.foreachBatch(handler)
        .option("checkpointLocation", scorer_checkpoint(settings, sc.result.model_version))
        .trigger(**trigger)
        .start()
    )
    sc.query_id = str(query.id)
    sc.ready.set()
    return query


def run_scorer(
    model_version: str,
    *,
    score_from: datetime,
    score_until: datetime,
    settings: Settings | None = None,
    registry: ModelRegistry | None = None,
) -> ScoreResult:
    """Score gold feature rows with ``score_from <= ts < score_until`` not yet scored by ``model_version``."""
    from spark_jobs.delta_io import check_interval, ensure_table
    from spark_jobs.session import get_spark

    settings = settings or get_settings()
    check_interval(score_from, score_until)
    registry = registry or ModelRegistry.for_settings(settings)
    model = registry.load(model_version)
    check_out_of_sample(model, score_from)
    ensure_table(get_spark(settings), GOLD_FEATURES, settings)
    sc = _prepare(model, settings, registry)
    if sc.producer is None:
        return sc.result
    try:
        query = _start(sc, _score_handler(sc, settings), settings, score_from, score_until, {"availableNow": True})
        query.awaitTermination()
    finally:
        sc.producer.close()
    log.info("scorer.done", extra={"model_version": model_version, "scored": sc.result.scored})
    return sc.result


def start_scorer(
    model_version: str,
    *,
    trigger_seconds: float,
    settings: Settings | None = None,
    registry: ModelRegistry | None = None,
    score_from: datetime | None = None,
    on_batch: Callable[[pd.DataFrame, float, float], None] | None = None,
) -> tuple[StreamingQuery | None, threading.Lock, ScoreResult, Callable[[], None]]:
    """Start scoring continuously (a micro-batch every ``trigger_seconds``) from ``score_from`` (default:
    the model's out-of-sample start), with run_scorer's checkpoint and MERGE: one signal per bar.

    Returns the query (None when the model failed the champion gate: it publishes nothing), the lock
    its batches hold, the running result and a ``close`` for the producer. Stamps each scored bar's
    ``signal`` stage in ops.bar_stages.
    """
    from spark_jobs.delta_io import ensure_table
    from spark_jobs.session import get_spark

    settings = settings or get_settings()
    registry = registry or ModelRegistry.for_settings(settings)
    model = registry.load(model_version)
    score_from = score_from or model.oos_start
    check_out_of_sample(model, score_from)
    ensure_table(get_spark(settings), GOLD_FEATURES, settings)
    sc = _prepare(model, settings, registry)
    if sc.producer is None:
        return None, sc.busy, sc.result, lambda: None
    producer = sc.producer
    handler = _score_handler(sc, settings, stamp=True, on_batch=on_batch)
    query = _start(sc, handler, settings, score_from, None, {"processingTime": f"{trigger_seconds} seconds"})
    return query, sc.busy, sc.result, producer.close
