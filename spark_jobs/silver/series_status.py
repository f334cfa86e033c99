"""silver.bars -> silver.series_status: is each series still alive at the interval's end?

A series is stale at ``as_of`` (the end of the silver run's interval, its logical time: never the
wall clock) when its last bar closed by ``as_of`` closed more than ``settings.market.max_series_age_s``
before it (``last_bar_too_old``: the feed stopped), or when that last bar is itself ``flag_stale``
(``last_bar_stale``: the feed still prints, but a frozen price). Only bars with ``close_time <= as_of``
count, so a row depends on nothing that was not knowable at ``as_of`` and a re-run writes the same
row (MERGE on series and ``as_of``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from cryptolake.errors import DataValidationError
from cryptolake.logs import get_logger
from cryptolake.settings import Settings, get_settings
from cryptolake.tables import SILVER_BARS, SILVER_SERIES_STATUS
from spark_jobs.delta_io import merge_rows, sql_ts, table_exists

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = get_logger(__name__)

TOO_OLD = "last_bar_too_old"
LAST_BAR_STALE = "last_bar_stale"
_SERIES_KEYS: tuple[str, ...] = ("exchange", "symbol", "timeframe")


@dataclass
class SeriesStatusResult:
    """What one series-status run wrote."""

    as_of: str
    series: int = 0
    stale: list[str] = field(default_factory=list)  # "exchange:symbol:timeframe" of each stale series
    inserted: int = 0
    updated: int = 0


def series_status(bars: DataFrame, as_of: datetime, max_age_s: float) -> DataFrame:
    """silver.bars rows -> one silver.series_status row per series known at ``as_of`` (pure)."""
    from pyspark.sql import functions as F

    if max_age_s <= 0:
        raise DataValidationError("market.max_series_age_s", max_age_s, "must be > 0")
    as_of_col = F.expr(sql_ts(as_of))
    last = (
        bars.where(F.col("close_time") <= as_of_col)
        .groupBy(*_SERIES_KEYS)
        .agg(
            F.max("open_time").alias("last_open_time"),
            F.max_by("close_time", "open_time").alias("last_close_time"),
            # a row from before flag_stale existed (NULL) has not been judged: not evidence of a freeze
            F.coalesce(F.max_by("flag_stale", "open_time"), F.lit(False)).alias("last_bar_stale"),
        )
    )
    age = (F.unix_micros(as_of_col) - F.unix_micros("last_close_time")) / F.lit(1e6)
    too_old = F.col("age_s") > F.lit(float(max_age_s))
    return (
        last.withColumn("as_of", as_of_col)
        .withColumn("age_s", age.cast("double"))
        .withColumn("max_age_s", F.lit(float(max_age_s)))
        .withColumn("stale", too_old | F.col("last_bar_stale"))
        .withColumn(
            "reason",
            F.concat_ws(",", F.when(too_old, F.lit(TOO_OLD)), F.when(F.col("last_bar_stale"), F.lit(LAST_BAR_STALE))),
        )
        .select(*SILVER_SERIES_STATUS.column_names)
    )


def run_series_status(spark: SparkSession, as_of: datetime, settings: Settings | None = None) -> SeriesStatusResult:
    """MERGE the status of every series in silver.bars as of ``as_of`` (idempotent; nothing if no silver)."""
    settings = settings or get_settings()
    result = SeriesStatusResult(as_of=as_of.isoformat())
    if not table_exists(spark, SILVER_BARS, settings):
        return result
    bars = spark.read.format("delta").load(SILVER_BARS.path(settings)).where(
        f"bar_date <= DATE '{as_of.date().isoformat()}'"
    )
    rows = series_status(bars, as_of, settings.market.max_series_age_s).persist()
    try:
        got = rows.select(*_SERIES_KEYS, "stale").collect()
        if not got:
            return result
        metrics = merge_rows(spark, rows, SILVER_SERIES_STATUS, target_filter=f"t.as_of = {sql_ts(as_of)}",
                             settings=settings)
    finally:
        rows.unpersist()
    result.series = len(got)
    result.stale = sorted(f"{r['exchange']}:{r['symbol']}:{r['timeframe']}" for r in got if r["stale"])
    result.inserted, result.updated = metrics["inserted"], metrics["updated"]
    log.info("silver.series_status.done", extra=vars(result))
    return result
