"""Per-bar stage stamps (``ops.bar_stages``): when each bar reached ingest, landing, gold and a signal.

Written by the streaming stages with a Delta idempotent append per micro-batch (a replayed batch
adds nothing); a bar stamped twice (a re-processed bar) keeps both rows and readers take the first.
The rows are :func:`cryptolake.stages.stage_rows`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from cryptolake.settings import Settings
from cryptolake.tables import BAR_STAGES
from spark_jobs.delta_io import append_once, ensure_table

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def append_stages(spark: SparkSession, rows: pd.DataFrame, app_id: str, batch_id: int, settings: Settings) -> None:
    """Append stage rows once per ``(app_id, batch_id)`` (nothing when ``rows`` is empty)."""
    if rows.empty:
        return
    ensure_table(spark, BAR_STAGES, settings)
    df = spark.createDataFrame(rows, schema=BAR_STAGES.ddl)
    append_once(df.coalesce(1), BAR_STAGES.path(settings), app_id, batch_id)
