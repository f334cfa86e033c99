"""Market landing audit: every data interval, what the streaming landing committed to bronze market.ohlcv.

Wiring only: the one task calls ``pipeline.landing.audit_interval`` for the run's data interval. It
counts the rows landed in the interval (by their ``landed_time``), fails on a Kafka offset landed
twice, counts quarantined payloads and the ingest -> landed lag, and replaces the interval's row of
``ops.landing_audit`` (idempotent). The interval is ``airflow.landing_interval_s``; under
`cryptolake up` (``airflow.landing_start`` = its start) the scheduler catches up every interval
since, so a restarted scheduler leaves no gap. Unpaused on creation: it is the DAG `up` runs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import dag, task
from airflow.timetables.interval import DeltaDataIntervalTimetable

from cryptolake.settings import get_settings
from dags.context import data_interval
from pipeline.alerts import on_task_failure

DEFAULT_ARGS = {"owner": "cryptolake", "retries": 2, "retry_delay": timedelta(seconds=10),
                "on_failure_callback": on_task_failure}

_AF = get_settings().airflow


@dag(
    dag_id="market_landing",
    schedule=DeltaDataIntervalTimetable(timedelta(seconds=_AF.landing_interval_s)),
    # no recorded start (parsed outside `up`): the latest interval only
    start_date=_AF.landing_start or datetime(2024, 1, 1, tzinfo=UTC),
    catchup=_AF.landing_start is not None,
    max_active_runs=1,
    is_paused_upon_creation=False,
    default_args=DEFAULT_ARGS,
    tags=["market", "landing", "quality"],
    doc_md=__doc__,
)
def market_landing() -> None:
    @task
    def audit_landing() -> dict[str, Any]:
        from pipeline import landing

        return landing.audit_interval(*data_interval("market_landing"))

    audit_landing()


market_landing_dag = market_landing()
