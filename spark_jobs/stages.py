"""Per-bar stage stamps (``ops.bar_stages``): when each bar reached ingest, landing, gold and a signal.

Written by the streaming stages with a Delta idempotent append per micro-batch (a replayed batch
adds nothing); a bar stamped twice (a re-processed bar) keeps both rows and readers take the first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from cryptolake.settings import Settings
from cryptolake.tables import BAR_STAGES
from spark_jobs.delta_io import append_once, ensure_table

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def stage_rows(keys: pd.DataFrame, stage: str, stage_time: pd.Series | pd.Timestamp) -> pd.DataFrame:
    """``keys`` (exchange, symbol, timeframe, ts) stamped ``stage`` at ``stage_time`` (UTC), as BAR_STAGES rows."""
    out = keys[["exchange", "symbol", "timeframe", "ts"]].copy()
    out["ts"] = pd.to_datetime(out["ts"], utc=True)
    out["stage"] = stage
    out["stage_time"] = pd.to_datetime(stage_time, utc=True) if isinstance(stage_time, pd.Series) \
        else pd.Timestamp(stage_time).tz_convert("UTC") if pd.Timestamp(stage_time).tzinfo \
        else pd.Timestamp(stage_time).tz_localize("UTC")
    out["stage_time"] = out["stage_time"].dt.floor("us")  # Spark timestamps are microseconds
    out["bar_date"] = out["ts"].dt.date
    return out[list(BAR_STAGES.column_names)]


def append_stages(spark: SparkSession, rows: pd.DataFrame, app_id: str, batch_id: int, settings: Settings) -> None:
    """Append stage rows once per ``(app_id, batch_id)`` (nothing when ``rows`` is empty)."""
    if rows.empty:
        return
    ensure_table(spark, BAR_STAGES, settings)
    df = spark.createDataFrame(rows, schema=BAR_STAGES.ddl)
    append_once(df.coalesce(1), BAR_STAGES.path(settings), app_id, batch_id)
