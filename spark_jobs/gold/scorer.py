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

Layer note: ``spark_jobs -> models`` is a named exception of the layer contract (the scorer
needs the registry and the Model protocol).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd

from cryptolake import topics
from cryptolake.bus import Producer, ensure_topics
from cryptolake.errors import DataValidationError
from cryptolake.logs import get_logger
from cryptolake.schemas import SignalV1
from cryptolake.settings import Settings, get_settings
from cryptolake.tables import GOLD_FEATURES, SIGNALS_TABLE
from cryptolake.types import TIMEFRAME_MS, to_ms
from models.base import Model
from models.registry import ModelRegistry

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


def run_scorer(
    model_version: str,
    *,
    score_from: datetime,
    score_until: datetime,
    settings: Settings | None = None,
    registry: ModelRegistry | None = None,
) -> ScoreResult:
    """Score gold feature rows with ``score_from <= ts < score_until`` not yet scored by ``model_version``."""
    from pyspark.sql import DataFrame
    from pyspark.sql import functions as F

    from models.scoring import score_frame
    from spark_jobs.delta_io import check_interval, date_filter, ensure_table, merge_rows
    from spark_jobs.session import get_spark

    settings = settings or get_settings()
    check_interval(score_from, score_until)
    registry = registry or ModelRegistry.for_settings(settings)
    model = registry.load(model_version)
    check_out_of_sample(model, score_from)
    refused = gate_refusal(registry, model_version)
    spark = get_spark(settings)
    window = model.window
    result = ScoreResult(model_version=model_version)
    ensure_topics([topics.SIGNALS], settings)
    features_path = GOLD_FEATURES.path(settings)
    ensure_table(spark, SIGNALS_TABLE, settings)
    if refused is not None:
        log.warning("scorer.refused", extra={"model_version": model_version, "reason": refused})
        return ScoreResult(model_version=model_version, refused=refused)
    context_cols = ["exchange", "symbol", "timeframe", "ts", *model.feature_columns]
    producer = Producer(settings, client_id="cryptolake-scorer")

    def score_batch(batch: DataFrame, batch_id: int) -> None:
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
        log.info("scorer.batch", extra={"batch_id": batch_id, "scored": len(scores), "model_version": model_version})

    stream = (
        spark.readStream.format("delta").option("skipChangeCommits", "true").load(features_path)
        .where((F.col("ts") >= F.lit(score_from)) & (F.col("ts") < F.lit(score_until)))
    )
    try:
        query = (
            stream.writeStream.foreachBatch(score_batch)
            .option("checkpointLocation", scorer_checkpoint(settings, model_version))
            .trigger(availableNow=True)
            .start()
        )
        query.awaitTermination()
    finally:
        producer.close()
    log.info("scorer.done", extra={"model_version": model_version, "scored": result.scored})
    return result
