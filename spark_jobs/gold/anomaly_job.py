"""gold.anomalies for a data interval: the detectors of :mod:`spark_jobs.gold.anomaly_models` over gold.features.

Reads the interval's gold feature rows plus the detectors' lookback before the first calendar month
the interval touches, scores per series with ``applyInPandas`` and replaces the interval's rows
(``replaceWhere``), so re-running an interval writes the same rows once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from cryptolake.errors import TableNotFoundError
from cryptolake.logs import get_logger
from cryptolake.settings import Settings, get_settings
from cryptolake.tables import GOLD_ANOMALIES, GOLD_FEATURES
from spark_jobs.delta_io import check_interval, ensure_table, interval_filter, table_exists
from spark_jobs.gold.anomaly_models import DETECTOR_INPUTS, DetectorConfig, refit_starts, score_interval
from spark_jobs.gold.features import SERIES_KEYS

log = get_logger(__name__)


@dataclass
class AnomalyResult:
    """What one run wrote."""

    start: str
    end: str
    rows: int = 0
    scored: int = 0
    iforest_flags: int = 0
    pca_flags: int = 0


def run_anomalies(start: datetime, end: datetime, settings: Settings | None = None,
                  config: DetectorConfig | None = None) -> AnomalyResult:
    """Score gold.features rows with ``start <= ts < end`` into gold.anomalies (idempotent)."""
    from pyspark.sql import functions as F

    from spark_jobs.session import get_spark

    settings = settings or get_settings()
    config = config or DetectorConfig()
    check_interval(start, end)
    spark = get_spark(settings)
    if not table_exists(spark, GOLD_FEATURES, settings):
        raise TableNotFoundError(f"{GOLD_FEATURES.name} does not exist at {GOLD_FEATURES.path(settings)}")
    # The lookback, and a day more: each row's yardstick is the row before's volatility.
    since = (refit_starts(start, end)[0] - pd.Timedelta(config.lookback) - pd.Timedelta(days=1)).to_pydatetime()
    rows = (
        spark.read.format("delta").load(GOLD_FEATURES.path(settings))
        .where(interval_filter("bar_date", "ts", since, end))
        .select(*SERIES_KEYS, "ts", *DETECTOR_INPUTS)
    )
    schema = ", ".join(f"{c} {t}" for c, t in GOLD_ANOMALIES.columns if c != "bar_date")

    def per_series(pdf: pd.DataFrame) -> pd.DataFrame:
        return score_interval(pdf, start, end, config)

    scored = (
        rows.groupBy(*SERIES_KEYS).applyInPandas(per_series, schema=schema)
        .withColumn("bar_date", F.to_date("ts"))
        .select(*GOLD_ANOMALIES.column_names)
        .persist()
    )
    try:
        counts = scored.agg(F.count(F.lit(1)), F.count("iforest_score"),
                            F.sum(F.col("iforest_flag").cast("int")), F.sum(F.col("pca_flag").cast("int"))).collect()[0]
        ensure_table(spark, GOLD_ANOMALIES, settings)
        scored.write.format("delta").mode("overwrite").option(
            "replaceWhere", interval_filter("bar_date", "ts", start, end)
        ).save(GOLD_ANOMALIES.path(settings))
    finally:
        scored.unpersist()
    result = AnomalyResult(start=start.isoformat(), end=end.isoformat(), rows=int(counts[0]), scored=int(counts[1]),
                           iforest_flags=int(counts[2] or 0), pca_flags=int(counts[3] or 0))
    log.info("gold.anomalies", extra=result.__dict__)
    return result
