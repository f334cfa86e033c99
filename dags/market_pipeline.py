"""Market pipeline: ingest -> land -> silver -> gold -> (anomalies | train -> score -> trade), per data interval.

Wiring only: every task calls one function of ``pipeline.market`` and hands its typed result to
the next task through XCom. On its ``@daily`` schedule a run processes its own data interval:
training uses a rolling lookback ending at the interval's end (or reuses the champion when
retraining is not due), the day's bars are scored and traded, and the trading account carries over
from the previous interval. ``interval_start`` / ``interval_end`` params widen a run (the main job
backfills the whole embedded history as one interval). Re-running an interval is safe: every task
is idempotent.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task
from airflow.timetables.interval import CronDataIntervalTimetable

from cryptolake.settings import get_settings
from dags.context import data_interval
from pipeline.alerts import on_task_failure

DEFAULT_ARGS = {"owner": "cryptolake", "retries": 2, "retry_delay": timedelta(seconds=30),
                "on_failure_callback": on_task_failure}


def _interval() -> tuple[str, str]:
    ctx = get_current_context()
    params = ctx["params"]
    start, end = params.get("interval_start"), params.get("interval_end")
    if bool(start) != bool(end):
        raise ValueError("market_pipeline: give both params interval_start and interval_end, or neither")
    if not start:
        return data_interval("market_pipeline")
    return str(start), str(end)


_AF = get_settings().airflow


@dag(
    dag_id="market_pipeline",
    # A data-interval timetable: the run for day D covers [D, D + 1 day) (Airflow 3's plain "@daily"
    # string would give a zero-length interval at the trigger time). Schedule, first and last interval
    # and catch-up are settings (airflow.market_*): the scheduler then creates one run per missed interval.
    schedule=CronDataIntervalTimetable(_AF.market_schedule, timezone="UTC"),
    start_date=_AF.market_start,
    end_date=_AF.market_end,
    catchup=_AF.market_catchup,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["market", "main-job"],
    params={
        "interval_start": Param(None, type=["null", "string"], description="ISO start; default: data interval"),
        "interval_end": Param(None, type=["null", "string"], description="ISO end; default: data interval"),
    },
    doc_md=__doc__,
)
def market_pipeline() -> None:
    @task
    def ingest() -> Any:
        from pipeline import market

        return market.run_task("ingest", *_interval())

    @task
    def land(_: Any) -> Any:
        from pipeline import market

        return market.run_task("land", *_interval())

    @task
    def silver(_: Any) -> Any:
        from pipeline import market

        return market.run_task("silver", *_interval())

    @task
    def gold(_: Any) -> Any:
        from pipeline import market

        return market.run_task("gold", *_interval())

    @task
    def anomalies(_: Any) -> Any:
        from pipeline import market

        return market.run_task("anomalies", *_interval())

    @task
    def train(_: Any) -> Any:
        from pipeline import market

        return market.run_task("train", *_interval())

    @task
    def score(trained: Any) -> Any:
        from pipeline import market

        return market.run_task("score", *_interval(), model=trained)

    @task
    def trade(scored: Any) -> Any:
        from pipeline import market

        return market.run_task("trade", *_interval(), scored=scored)

    # gold.anomalies is a side branch: nothing downstream reads it, so a failed detector never blocks trading.
    features = gold(silver(land(ingest())))
    anomalies(features)
    trade(score(train(features)))


market_pipeline_dag = market_pipeline()
