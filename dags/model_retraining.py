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
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowSkipException
from airflow.timetables.interval import CronDataIntervalTimetable

from cryptolake.settings import get_settings
from dags.context import data_interval
from pipeline.alerts import on_task_failure

DEFAULT_ARGS = {"owner": "cryptolake", "retries": 2, "retry_delay": timedelta(minutes=1),
                "on_failure_callback": on_task_failure}

_AF = get_settings().airflow


def _interval() -> tuple[str, str]:
    return data_interval("model_retraining")


@dag(
    dag_id="model_retraining",
    schedule=CronDataIntervalTimetable(_AF.market_schedule, timezone="UTC"),
    start_date=_AF.market_start,
    end_date=_AF.market_end,
    catchup=False,
    max_active_runs=1,
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
