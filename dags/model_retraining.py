"""Model retraining: a daily drift check against the champion's training set, then a challenger when due.

Wiring only: each task calls ``pipeline.retraining.run_task``. ``drift_check`` judges the run's data
interval (the market DAG's intervals: same schedule and first interval, settings ``airflow.market_*``)
against the reference the champion was trained on (PSI/KS of every feature and of the predictions,
hit-rate decay) and writes the drift report; ``retrain`` trains a challenger on the rolling lookback,
registers it and promotes it only if it passes the champion gate. Daily rather than weekly: drift
is caught the day it shows (a day is 48 bars per symbol, enough to judge with the default five
symbols), while the weekly rule still retrains a champion ``pipeline.retrain_every_days`` old on a
quiet market. When neither applies, ``retrain`` is SKIPPED (its state), and the reason is in its
log and in ``drift_check``'s XCom.

Under `cryptolake up` (``airflow.retrain_interval_s`` set, ``airflow.retrain_clock = landed``) the
intervals are short wall-clock ones from the start of `up` instead (:func:`schedule`): each run judges
the streamed market's bars that landed in it (their bar-time span, :func:`pipeline.retraining.landed_span`),
the latest interval only (no catch-up: drift persists, a slow retrain skips ahead rather than queues),
unpaused on creation like ``market_landing``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowSkipException
from airflow.timetables.base import Timetable
from airflow.timetables.interval import CronDataIntervalTimetable, DeltaDataIntervalTimetable

from cryptolake.settings import AirflowSettings, get_settings
from dags.context import data_interval
from pipeline.alerts import on_task_failure

DEFAULT_ARGS = {"owner": "cryptolake", "retries": 2, "retry_delay": timedelta(minutes=1),
                "on_failure_callback": on_task_failure}

_AF = get_settings().airflow


def schedule(af: AirflowSettings) -> tuple[Timetable, datetime, datetime | None]:
    """The timetable, first interval's start and last one's of ``af``: ``retrain_interval_s`` when set (`up`),
    else the market DAG's daily cron."""
    if af.retrain_interval_s is not None:
        start = af.retrain_start or datetime(2024, 1, 1, tzinfo=UTC)
        return DeltaDataIntervalTimetable(timedelta(seconds=af.retrain_interval_s)), start, None
    return CronDataIntervalTimetable(af.market_schedule, timezone="UTC"), af.market_start, af.market_end


def _interval() -> tuple[str, str]:
    return data_interval("model_retraining")


_TIMETABLE, _START, _END = schedule(_AF)


@dag(
    dag_id="model_retraining",
    schedule=_TIMETABLE,
    start_date=_START,
    end_date=_END,
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=False if _AF.retrain_interval_s is not None else None,  # under `up`: runs from its start
    default_args=DEFAULT_ARGS,
    tags=["models", "retraining", "drift"],
    doc_md=__doc__,
)
def model_retraining() -> None:
    @task
    def drift_check() -> dict[str, Any]:
        from pipeline import retraining

        return retraining.run_task("drift_check", *_interval())

    @task
    def retrain(check: Any) -> dict[str, Any]:
        from pipeline import retraining

        if not check["retrain"]:
            raise AirflowSkipException(f"retrain skipped: {check['reason']}")
        return retraining.run_task("retrain", *_interval(), reason=check["reason"])

    retrain(drift_check())


model_retraining_dag = model_retraining()
