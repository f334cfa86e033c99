"""Shared bronze -> silver plumbing of the market tables (trades, book metrics, tickers, venue flags).

Each market silver job is: read the bronze rows of one topic whose ``event_time`` is in
``[start, end)``, parse the payload with the message's fields, keep the first landed copy per
table key (counting the others in ``duplicates``), validate, and MERGE into the table scoped to
the same interval. A re-run, or a run after more data landed, rewrites nothing that did not
change (``merge_rows`` updates only rows whose values differ).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from cryptolake.errors import DataValidationError
from cryptolake.logs import get_logger
from cryptolake.settings import Settings, get_settings
from cryptolake.tables import TableSpec, bronze_spec
from spark_jobs.delta_io import check_interval, interval_filter, merge_rows, read_interval

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = get_logger(__name__)

# Bronze columns every market job keeps next to the parsed payload (``p``).
_BRONZE_KEEP = ("event_time", "available_time", "ingest_time", "kafka_time", "partition", "offset")


@dataclass
class MarketSilverResult:
    """What one market silver run did for ``[start, end)``."""

    table: str
    start: str
    end: str
    rows: int = 0
    duplicates: int = 0
    inserted: int = 0
    updated: int = 0
    table_version: int = -1


def read_bronze(spark: SparkSession, topic: str, payload_ddl: str, start: datetime, end: datetime,
                settings: Settings) -> DataFrame | None:
    """Bronze rows of ``topic`` with ``event_time`` in ``[start, end)`` plus the parsed payload ``p``."""
    from pyspark.sql import functions as F

    raw = read_interval(spark, bronze_spec(topic), start, end, settings)
    if raw is None:
        return None
    return raw.select(*_BRONZE_KEEP, F.from_json("payload", payload_ddl).alias("p"))


def first_copy(rows: DataFrame, keys: tuple[str, ...]) -> DataFrame:
    """One row per key: the first landed copy (ingest, Kafka time, partition, offset); ``duplicates`` = the rest."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    by_key = Window.partitionBy(*keys)
    ordered = by_key.orderBy("ingest_time", "kafka_time", "partition", "offset")
    return (rows.withColumn("_n", F.row_number().over(ordered))
                .withColumn("duplicates", (F.count(F.lit(1)).over(by_key) - 1).cast("int"))
                .where("_n = 1").drop("_n"))


def validate_rows(rows: DataFrame, spec: TableSpec, required: tuple[str, ...]) -> int:
    """Refuse to write rows with a null key or required value; returns the row count."""
    from pyspark.sql import functions as F

    cols = tuple(dict.fromkeys((*spec.keys, *required)))
    counts = rows.agg(F.count(F.lit(1)).alias("rows"),
                      *[F.sum(F.col(c).isNull().cast("int")).alias(c) for c in cols]).collect()[0]
    for c in cols:
        if counts[c]:
            raise DataValidationError(c, None, f"{counts[c]} row(s) of {spec.name} have a null {c}")
    return int(counts["rows"])


def run_market_silver(spec: TableSpec, topic: str, payload_ddl: str,
                      build: Callable[[DataFrame], DataFrame], start: datetime, end: datetime,
                      settings: Settings | None = None, *, required: tuple[str, ...] = ()) -> MarketSilverResult:
    """Bronze ``topic`` -> ``build`` -> first copy per key -> validate -> MERGE into ``spec`` for ``[start, end)``.

    ``build`` maps the bronze frame (times plus parsed ``p``) onto the spec's columns except
    ``duplicates``; it must keep ``kafka_time``, ``partition`` and ``offset`` for ordering copies.
    """
    from spark_jobs.session import get_spark

    settings = settings or get_settings()
    check_interval(start, end)
    spark = get_spark(settings)
    result = MarketSilverResult(spec.name, start.isoformat(), end.isoformat())
    raw = read_bronze(spark, topic, payload_ddl, start, end, settings)
    if raw is None:
        log.warning("silver.market.no_bronze", extra={"table": spec.name, "topic": topic})
        return result
    rows = first_copy(build(raw), spec.keys).select(*spec.column_names).persist()
    try:
        result.rows = validate_rows(rows, spec, required)
        if result.rows == 0:
            log.info("silver.market.empty", extra={"table": spec.name, "start": result.start, "end": result.end})
            return result
        result.duplicates = int(rows.groupBy().sum("duplicates").collect()[0][0] or 0)
        target = interval_filter("t.event_date", "t.event_time", start, end)
        metrics = merge_rows(spark, rows, spec, target_filter=target, settings=settings)
    finally:
        rows.unpersist()
    result.inserted, result.updated, result.table_version = metrics["inserted"], metrics["updated"], \
        metrics["version"]
    log.info("silver.market.done", extra=dict(vars(result)))
    return result
