"""The streaming scorer: new gold feature rows in, ``signals`` out.

A Spark Structured Streaming query reads ``gold.features`` as a Delta stream (so bars are
scored as they arrive, whether one bar or a backfill lands), and in ``foreachBatch`` scores
every new bar that completes a window with the saved model (``models.scoring.score_frame``,
the same code backtests use), publishes each score to Kafka ``signals`` as a validated
``SignalV1`` and MERGEs it into ``gold.signals``. One checkpoint per model version: a re-run
with the same model scores nothing twice; a replayed micro-batch re-publishes the same
(key, bar_time, model_version) records, which consumers treat as one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd

from cryptolake import topics
from cryptolake.bus import Producer, ensure_topics
from cryptolake.logs import get_logger
from cryptolake.schemas import SignalV1
from cryptolake.settings import Settings, get_settings
from cryptolake.tables import GOLD_FEATURES, SIGNALS_TABLE
from cryptolake.types import TIMEFRAME_MS

log = get_logger(__name__)


@dataclass
class ScoreResult:
    """What the scorer did."""

    model_version: str
    batches: int = 0
    scored: int = 0
    published: int = 0
    up_signals: int = 0
    first_bar: str | None = None
    last_bar: str | None = None
    per_symbol: dict[str, int] = field(default_factory=dict)


def signal_messages(scores: pd.DataFrame) -> list[SignalV1]:
    """Scores -> validated ``SignalV1`` messages (available at the scored bar's close)."""
    out: list[SignalV1] = []
    for row in scores.to_dict(orient="records"):
        bar_ms = int(pd.Timestamp(row["bar_time"]).timestamp() * 1000)
        close_ms = bar_ms + TIMEFRAME_MS[str(row["timeframe"])]
        out.append(
            SignalV1(
                schema_version=1,
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


def run_scorer(
    model_path: str,
    *,
    score_from: datetime,
    score_until: datetime,
    settings: Settings | None = None,
) -> ScoreResult:
    """Score gold feature rows with ``score_from <= ts < score_until`` that have not been scored yet."""
    from pyspark.sql import DataFrame
    from pyspark.sql import functions as F

    from models.lstm import LstmModel
    from models.scoring import score_frame
    from spark_jobs.delta_io import ensure_table, merge_rows
    from spark_jobs.session import get_spark

    settings = settings or get_settings()
    spark = get_spark(settings)
    model = LstmModel.load(model_path)
    version = model.model_version
    window = model.config.window
    result = ScoreResult(model_version=version)
    ensure_topics([topics.SIGNALS], settings)
    features_path = GOLD_FEATURES.path(settings)
    ensure_table(spark, SIGNALS_TABLE, settings)
    context_cols = ["exchange", "symbol", "timeframe", "ts", *model.metadata.feature_columns]  # type: ignore[union-attr]
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
        days = f"t.bar_date >= DATE '{rows['bar_date'].min()}' AND t.bar_date <= DATE '{rows['bar_date'].max()}'"
        merge_rows(spark, sdf, SIGNALS_TABLE, target_filter=days, settings=settings)
        result.batches += 1
        result.scored += len(scores)
        result.published += len(scores)
        result.up_signals += int(scores["direction"].sum())
        for sym, n in scores.groupby("symbol").size().items():
            result.per_symbol[str(sym)] = result.per_symbol.get(str(sym), 0) + int(n)
        first, last = scores["bar_time"].min().isoformat(), scores["bar_time"].max().isoformat()
        result.first_bar = min(result.first_bar or first, first)
        result.last_bar = max(result.last_bar or last, last)
        log.info("scorer.batch", extra={"batch_id": batch_id, "scored": len(scores), "model_version": version})

    checkpoint = f"{settings.paths.checkpoints().rstrip('/')}/scorer/{version}"
    stream = (
        spark.readStream.format("delta").option("skipChangeCommits", "true").load(features_path)
        .where((F.col("ts") >= F.lit(score_from)) & (F.col("ts") < F.lit(score_until)))
    )
    try:
        query = (
            stream.writeStream.foreachBatch(score_batch)
            .option("checkpointLocation", checkpoint)
            .trigger(availableNow=True)
            .start()
        )
        query.awaitTermination()
    finally:
        producer.close()
    log.info("scorer.done", extra={"model_version": version, "scored": result.scored})
    return result

