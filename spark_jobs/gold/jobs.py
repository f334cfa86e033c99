"""The gold job: silver.bars -> gold.features and gold.labels for one data interval.

Features for bars opening in ``[start, end)`` are computed from those bars plus the
``WARMUP_BARS`` valid bars before ``start`` (exactly the warm-up the feature definition
declares, so results equal a run over the whole history) and written with ``replaceWhere``
on the interval. A label becomes knowable when the next bar arrives, so labels are scoped
by the *next* bar: this run writes the labels whose next valid bar opens in
``[start, end)`` (MERGE on the keys). Re-running an interval rewrites the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cryptolake.errors import DataValidationError, SchemaMismatchError, TableNotFoundError
from cryptolake.logs import get_logger
from cryptolake.settings import Settings, get_settings
from cryptolake.tables import FEATURE_COLUMNS, GOLD_FEATURES, GOLD_LABELS, SILVER_BARS
from spark_jobs.delta_io import check_interval, ensure_table, interval_filter, merge_rows, sql_ts, table_exists
from spark_jobs.gold.features import WARMUP_BARS, compute_features
from spark_jobs.gold.labels import SERIES_KEYS, labels_with_next_open

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = get_logger(__name__)


@dataclass
class GoldResult:
    """What one gold run wrote (JSON-able)."""

    start: str
    end: str
    feature_rows: int = 0
    label_rows: int = 0
    labels_inserted: int = 0
    labels_updated: int = 0
    anomalies: int = 0
    warmup_bars_read: int = 0
    per_series: dict[str, int] = field(default_factory=dict)
    features_version: int = -1
    features_committed_ms: int = -1  # when the feature rows became visible (the commit's time, epoch ms)
    labels_version: int = -1


def bars_with_warmup(spark: SparkSession, start: datetime, end: datetime,
                     settings: Settings | None = None) -> DataFrame:
    """Valid silver bars opening in ``[start, end)`` plus the ``WARMUP_BARS`` valid bars before ``start``."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if not table_exists(spark, SILVER_BARS, settings):
        raise TableNotFoundError(f"{SILVER_BARS.name} does not exist at {SILVER_BARS.path(settings)}")
    silver = spark.read.format("delta").load(SILVER_BARS.path(settings)).where("is_valid")
    before = silver.where(f"bar_date <= DATE '{start.date().isoformat()}' AND open_time < {sql_ts(start)}")
    latest_first = Window.partitionBy(*SERIES_KEYS).orderBy(F.col("open_time").desc())
    warmup = before.withColumn("_n", F.row_number().over(latest_first)).where(
        F.col("_n") <= WARMUP_BARS
    ).drop("_n")
    current = silver.where(interval_filter("bar_date", "open_time", start, end))
    return warmup.unionByName(current)


def _validate_features(features: DataFrame) -> dict[str, Any]:
    """One pass: every feature present after warm-up, no duplicate rows; per-series counts."""
    from pyspark.sql import functions as F

    if tuple(features.columns) != GOLD_FEATURES.column_names:
        raise SchemaMismatchError(f"gold.features rows have columns {features.columns}")
    groups = features.groupBy(*SERIES_KEYS).agg(
        F.count(F.lit(1)).alias("rows"),
        F.count_distinct("ts").alias("keys"),
        F.sum(F.col("anomaly_flag").cast("int")).alias("anomalies"),
        *[F.sum((F.isnan(c) | F.col(c).isNull()).cast("int")).alias(c) for c in FEATURE_COLUMNS],
    ).collect()
    out: dict[str, Any] = {"rows": 0, "anomalies": 0, "per_series": {}}
    for g in groups:
        series = f"{g['exchange']}:{g['symbol']}:{g['timeframe']}"
        for c in FEATURE_COLUMNS:
            if g[c]:
                raise DataValidationError(c, "NaN", f"{g[c]} rows of {series} have no value after warm-up")
        if g["rows"] != g["keys"]:
            raise DataValidationError("ts", series, "duplicate feature rows")
        out["per_series"][series] = int(g["rows"])
        out["rows"] += int(g["rows"])
        out["anomalies"] += int(g["anomalies"] or 0)
    return out


def run_gold(start: datetime, end: datetime, settings: Settings | None = None, *,
             merge_features: bool = False) -> GoldResult:
    """Write gold.features and gold.labels for ``[start, end)`` (idempotent; see module docstring).

    ``merge_features``: MERGE the feature rows on their keys instead of ``replaceWhere`` on the
    interval (the streaming path: a re-run then rewrites no file, so the scorer's Delta stream,
    which skips change commits, still sees every new bar as an append).
    """
    from pyspark.sql import functions as F

    from spark_jobs.session import get_spark

    settings = settings or get_settings()
    check_interval(start, end)
    spark = get_spark(settings)
    result = GoldResult(start=start.isoformat(), end=end.isoformat())
    bars = bars_with_warmup(spark, start, end, settings).persist()
    try:
        result.warmup_bars_read = bars.where(f"open_time < {sql_ts(start)}").count()
        in_interval = f"ts >= {sql_ts(start)} AND ts < {sql_ts(end)}"
        features = compute_features(bars).where(in_interval).persist()
        checked = _validate_features(features)
        ensure_table(spark, GOLD_FEATURES, settings)
        if merge_features:
            merge_rows(spark, features, GOLD_FEATURES, settings=settings,
                       target_filter=interval_filter("t.bar_date", "t.ts", start, end))
        else:
            scope = interval_filter("bar_date", "ts", start, end)
            features.write.format("delta").mode("overwrite").option("replaceWhere", scope).save(
                GOLD_FEATURES.path(settings)
            )
        result.feature_rows, result.anomalies = checked["rows"], checked["anomalies"]
        result.per_series = checked["per_series"]
        features.unpersist()
        labels = (
            labels_with_next_open(bars)
            .where(f"next_open_time >= {sql_ts(start)} AND next_open_time < {sql_ts(end)}")
            .drop("next_open_time")
            .persist()
        )
        bounds = labels.agg(F.count(F.lit(1)), F.min("bar_date"), F.max("bar_date")).collect()[0]
        result.label_rows = int(bounds[0])
        if result.label_rows:
            target = f"t.bar_date >= DATE '{bounds[1]}' AND t.bar_date <= DATE '{bounds[2]}'"
            metrics = merge_rows(spark, labels, GOLD_LABELS, target_filter=target, settings=settings)
            result.labels_inserted, result.labels_updated = metrics["inserted"], metrics["updated"]
            result.labels_version = metrics["version"]
        labels.unpersist()
    finally:
        bars.unpersist()
    from delta.tables import DeltaTable

    last = (DeltaTable.forPath(spark, GOLD_FEATURES.path(settings)).history(1)
            .select("version", F.unix_millis("timestamp").alias("ms")).collect()[0])
    result.features_version, result.features_committed_ms = int(last["version"]), int(last["ms"])
    log.info("gold.done", extra={k: v for k, v in vars(result).items()})
    return result
