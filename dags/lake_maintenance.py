"""Lake maintenance and freshness: hourly freshness check that alerts; daily OPTIMIZE ZORDER, VACUUM, checkpoints.

Wiring only: each task calls one function of ``pipeline.maintenance``. ``freshness_check`` reads
every table's last commit and newest event time (Delta log and file statistics, no scan) and raises
a ``stale_data`` alert through the pipeline's alerter for each stale one; ``compact_and_vacuum``
OPTIMIZEs every table Z-ordered by its keys, then VACUUMs it with ``maintenance.vacuum_retention_hours``;
``clean_checkpoints`` deletes the streaming checkpoints unwritten for ``checkpoint_abandoned_days``.
The freshness check compares with the run's data-interval end (logical time, not the wall clock).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import dag, get_current_context, task

from pipeline.alerts import on_task_failure

DEFAULT_ARGS = {"owner": "cryptolake", "retries": 2, "retry_delay": timedelta(minutes=1),
                "on_failure_callback": on_task_failure}


@dag(
    dag_id="lake_freshness",
    schedule="@hourly",
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["maintenance", "freshness"],
    doc_md=__doc__,
)
def lake_freshness() -> None:
    @task
    def freshness_check() -> list[dict[str, Any]]:
        from cryptolake.settings import get_settings
        from pipeline import maintenance
        from pipeline.alerts import alerter

        ctx = get_current_context()
        end = ctx.get("data_interval_end")
        if end is None:
            raise ValueError("lake_freshness runs on a schedule: freshness_check needs a data interval end")
        settings = get_settings()
        alerts = maintenance.stale_alerts(maintenance.freshness_rows(settings), end.timestamp(), settings, alerter())
        return [{"key": a.key, "body": a.body} for a in alerts]

    freshness_check()


@dag(
    dag_id="lake_maintenance",
    schedule="@daily",
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["maintenance"],
    doc_md=__doc__,
)
def lake_maintenance() -> None:
    @task
    def compact_and_vacuum() -> list[dict[str, Any]]:
        from cryptolake.settings import get_settings
        from pipeline import maintenance
        from spark_jobs.session import get_spark

        settings = get_settings()
        return maintenance.maintain_lake(get_spark(settings), settings)

    @task
    def clean_checkpoints(_: Any) -> list[str]:
        from cryptolake.settings import get_settings
        from pipeline import maintenance

        return maintenance.clean_checkpoints(get_settings())

    clean_checkpoints(compact_and_vacuum())


lake_freshness_dag = lake_freshness()
lake_maintenance_dag = lake_maintenance()
