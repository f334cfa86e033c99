"""Silver and gold at each bar close: new bronze candles -> ``run_silver_bars`` -> ``run_gold``, per micro-batch.

A Structured Streaming query reads ``bronze.market_ohlcv`` as a Delta stream (append-only, so
every landed candle arrives once per checkpoint) with a processing-time trigger. Each micro-batch
takes the interval its candles span, ``[min open time, max close time)``, and runs the batch jobs
on just that interval: :func:`spark_jobs.silver.bars.run_silver_bars` (which reads its own jump and
flat-run context before the interval) and :func:`spark_jobs.gold.jobs.run_gold` (which reads the
``WARMUP_BARS`` warm-up bars before it). No transform is copied: the streaming path *is* the
interval path, on a one-bar interval. Both write by MERGE on the table keys (gold with
``merge_features``), so a replayed batch (a crash before the checkpoint commit) changes no row,
and the scorer's Delta stream over gold.features sees each new bar as an append.

Each batch then stamps its bars in ``ops.bar_stages`` (ingest, landed, gold; see
:mod:`spark_jobs.stages`) for the per-bar latency report.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import pandas as pd

from cryptolake import topics
from cryptolake.logs import get_logger
from cryptolake.settings import Settings, get_settings
from cryptolake.stages import stage_rows
from cryptolake.tables import BAR_STAGES, GOLD_FEATURES, bronze_spec
from cryptolake.types import TIMEFRAME_MS
from spark_jobs.delta_io import ensure_table, interval_filter, translate_spark_error
from spark_jobs.stages import append_stages

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.streaming import StreamingQuery

log = get_logger(__name__)
KEYS = ["exchange", "symbol", "timeframe", "ts"]


@dataclass
class FeaturesReport:
    """What one micro-batch did; ``latency_s``: per stage, each bar's seconds from its venue close."""

    batch_id: int
    candles: int
    start: datetime
    end: datetime
    silver_rows: int
    feature_rows: int
    seconds: float
    latency_s: dict[str, list[float]] = field(default_factory=dict)


def features_checkpoint(settings: Settings) -> str:
    return f"{settings.paths.checkpoints().rstrip('/')}/features/{bronze_spec(topics.MARKET_OHLCV).name}"


def batch_candles(batch: DataFrame) -> pd.DataFrame:
    """A bronze micro-batch as one row per candle: the bar key, its times and its first landed time."""
    from pyspark.sql import functions as F

    j = F.col("payload")
    rows = batch.select(
        F.get_json_object(j, "$.exchange").alias("exchange"), F.get_json_object(j, "$.symbol").alias("symbol"),
        F.get_json_object(j, "$.timeframe").alias("timeframe"), F.col("event_time").alias("ts"),
        "available_time", "ingest_time", "landed_time",
    ).groupBy(*KEYS).agg(F.min("available_time").alias("available_time"), F.min("ingest_time").alias("ingest_time"),
                         F.min("landed_time").alias("landed_time"))
    frame = rows.toPandas()
    for c in ("ts", "available_time", "ingest_time", "landed_time"):
        frame[c] = pd.to_datetime(frame[c], utc=True)
    return frame


def seconds_after_close(candles: pd.DataFrame, stamps: pd.Series) -> list[float]:
    """Seconds from each candle's venue close (open time + timeframe) to its ``stamps`` value."""
    close = candles["ts"] + pd.to_timedelta(candles["timeframe"].map(TIMEFRAME_MS), unit="ms")
    return [float(x) for x in (stamps - close).dt.total_seconds().dropna()]


class _State:
    def __init__(self) -> None:
        self.query_id = ""
        self.ready = threading.Event()
        self.busy = threading.Lock()


def start_features(*, trigger_seconds: float, settings: Settings | None = None,
                   on_batch: Callable[[FeaturesReport], None] | None = None) -> tuple[StreamingQuery, threading.Lock]:
    """Start the incremental silver+gold query; returns it and the lock its batches hold."""
    from pyspark.sql import functions as F

    from spark_jobs.gold.jobs import run_gold
    from spark_jobs.session import get_spark
    from spark_jobs.silver.bars import run_silver_bars

    settings = settings or get_settings()
    spark = get_spark(settings)
    bronze = bronze_spec(topics.MARKET_OHLCV)
    ensure_table(spark, bronze, settings)
    ensure_table(spark, GOLD_FEATURES, settings)
    state = _State()

    def handle(batch: DataFrame, batch_id: int) -> None:
        state.ready.wait(timeout=60)
        with state.busy:
            t0 = time.monotonic()
            candles = batch_candles(batch)
            if candles.empty:
                return
            start = candles["ts"].min().to_pydatetime()
            end = candles["available_time"].max().to_pydatetime()
            silver = run_silver_bars(start, end, settings=settings)
            gold = run_gold(start, end, settings=settings, merge_features=True)
            # the features commit's own time: the scorer may see the rows before run_gold returns (labels follow)
            gold_time = pd.Timestamp(gold.features_committed_ms, unit="ms", tz="UTC")
            written = (spark.read.format("delta").load(GOLD_FEATURES.path(settings))
                       .where(interval_filter("bar_date", "ts", start, end)).select(*KEYS).toPandas())
            written["ts"] = pd.to_datetime(written["ts"], utc=True)
            in_gold = candles.merge(written, on=KEYS, how="inner")
            rows = pd.concat([stage_rows(candles, "ingest", candles["ingest_time"]),
                              stage_rows(candles, "landed", candles["landed_time"]),
                              stage_rows(in_gold, "gold", gold_time)], ignore_index=True)
            append_stages(spark, rows, f"{BAR_STAGES.name}:features:{state.query_id}", batch_id, settings)
            report = FeaturesReport(
                batch_id, len(candles), start, end, silver.rows, len(in_gold), time.monotonic() - t0,
                {"ingest": seconds_after_close(candles, candles["ingest_time"]),
                 "landed": seconds_after_close(candles, candles["landed_time"]),
                 "gold": seconds_after_close(in_gold, pd.Series(gold_time, index=in_gold.index))},
            )
        log.info("features.batch", extra={"batch_id": batch_id, "candles": report.candles,
                                          "start": start.isoformat(), "end": end.isoformat(),
                                          "feature_rows": report.feature_rows, "gold_rows": gold.feature_rows,
                                          "seconds": round(report.seconds, 2)})
        if on_batch is not None:
            on_batch(report)

    stream = spark.readStream.format("delta").load(bronze.path(settings)).where(F.col("event_time").isNotNull())
    try:
        query = (stream.writeStream.queryName("features").foreachBatch(handle)
                 .option("checkpointLocation", features_checkpoint(settings))
                 .trigger(processingTime=f"{trigger_seconds} seconds").start())
    except Exception as exc:  # py4j errors, translated at the boundary
        raise translate_spark_error(exc, "start the features stream") from exc
    state.query_id = str(query.id)
    state.ready.set()
    return query, state.busy
