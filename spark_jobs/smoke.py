"""The stack's smoke job: write a tiny Delta table for one data interval and read it back.

It proves Spark + Delta + the lake root work end to end from inside an Airflow task, and it
follows the pipeline rules: the interval is passed in, the write is a ``replaceWhere`` of that
interval only (re-running replaces, never duplicates), and the data is checked after writing.
The rows are SYNTHETIC (a counter and a formula), not market data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptolake.errors import DataValidationError, InfrastructureError
from cryptolake.logs import get_logger
from cryptolake.settings import Settings, get_settings
from cryptolake.tables import TableSpec, register

log = get_logger(__name__)

SMOKE_TABLE = register(
    TableSpec(
        name="ops.stack_smoke",
        columns=(
            ("interval_start", "TIMESTAMP"),
            ("interval_end", "TIMESTAMP"),
            ("n", "BIGINT"),
            ("value", "DOUBLE"),
            ("run_date", "DATE"),
        ),
        keys=("interval_start", "n"),
        partition_by=("run_date",),
        description="Synthetic rows written by the stack_smoke DAG, one set per data interval",
    )
)


@dataclass(frozen=True)
class SmokeResult:
    """What the smoke job wrote and read back for its interval."""

    rows: int
    total: float
    path: str


def expected_total(rows: int) -> float:
    """Sum of ``value`` = 1.5 * n over n in [0, rows)."""
    return 1.5 * rows * (rows - 1) / 2


def _check_interval(start: datetime, end: datetime) -> None:
    if start.tzinfo is None:
        raise DataValidationError("interval_start", start, "must be UTC-aware")
    if end.tzinfo is None:
        raise DataValidationError("interval_end", end, "must be UTC-aware")
    if end < start:
        raise DataValidationError("interval_end", end, f"is before interval_start {start}")


def run_smoke(interval_start: datetime, interval_end: datetime, settings: Settings | None = None,
              *, rows: int = 10) -> SmokeResult:
    """Replace the interval's rows of ``ops.stack_smoke`` with ``rows`` synthetic rows; read and verify."""
    from pyspark.sql import functions as F

    from spark_jobs.session import get_spark

    _check_interval(interval_start, interval_end)
    if rows < 1:
        raise DataValidationError("rows", rows, "must be at least 1")
    settings = settings or get_settings()
    spark = get_spark(settings)
    path = SMOKE_TABLE.path(settings)
    start_lit = interval_start.strftime("%Y-%m-%d %H:%M:%S")
    frame = (
        spark.range(rows).select(
            F.lit(interval_start).cast("timestamp").alias("interval_start"),
            F.lit(interval_end).cast("timestamp").alias("interval_end"),
            F.col("id").alias("n"),
            (F.col("id") * 1.5).alias("value"),
        ).withColumn("run_date", F.to_date("interval_start"))
    )
    where = f"interval_start = timestamp'{start_lit}'"
    (frame.write.format("delta").mode("overwrite").option("replaceWhere", where)
          .partitionBy(*SMOKE_TABLE.partition_by).save(path))
    back = spark.read.format("delta").load(path).where(where).agg(
        F.count("*").alias("rows"), F.sum("value").alias("total")).first()
    if back is None or back["rows"] != rows or abs(back["total"] - expected_total(rows)) > 1e-9:
        raise InfrastructureError(f"smoke table {path} read back {back} for {start_lit}, expected {rows} rows")
    result = SmokeResult(rows=int(back["rows"]), total=float(back["total"]), path=path)
    log.info("smoke.ok", extra={"interval_start": start_lit, "rows": result.rows, "path": path})
    return result
