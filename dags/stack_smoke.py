"""
### stack_smoke

A thin end-to-end check of the local lakehouse: one task runs a small Spark job that writes a
tiny Delta table (``ops.stack_smoke``) for the run's data interval with ``replaceWhere`` and
reads it back (`spark_jobs.smoke.run_smoke`). Safe to re-run: an interval's rows are replaced.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import dag, task


@dag(
    dag_id="stack_smoke",
    schedule="@daily",
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["stack", "smoke"],
    default_args={"owner": "stack", "retries": 2, "retry_delay": timedelta(seconds=30)},
    doc_md=__doc__,
)
def stack_smoke() -> None:
    @task
    def spark_delta_roundtrip(data_interval_start: datetime | None = None,
                              data_interval_end: datetime | None = None) -> dict[str, float]:
        """Write and read back the interval's synthetic rows."""
        from cryptolake.errors import DataValidationError
        from spark_jobs.smoke import run_smoke

        if data_interval_start is None or data_interval_end is None:
            raise DataValidationError("data_interval_start", data_interval_start,
                                      "stack_smoke needs a data interval (a scheduled run or a logical date)")
        result = run_smoke(data_interval_start, data_interval_end)
        return {"rows": result.rows, "total": result.total}

    spark_delta_roundtrip()


stack_smoke()
