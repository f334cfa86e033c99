"""Market pipeline: ingest -> land -> silver -> gold -> train -> score -> trade, per data interval.

Wiring only: every task calls one function of ``pipeline.market``. By default a run covers
its data interval; ``interval_start`` / ``interval_end`` params widen it (the main job runs the
whole embedded history as one interval). Re-running an interval is safe: every task is
idempotent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task

DEFAULT_ARGS = {"owner": "cryptolake", "retries": 2, "retry_delay": timedelta(seconds=30)}


def _interval() -> tuple[str, str]:
    ctx = get_current_context()
    params = ctx["params"]
    start, end = params.get("interval_start"), params.get("interval_end")
    if not (start and end):
        lo, hi = ctx.get("data_interval_start"), ctx.get("data_interval_end")
        if lo is None or hi is None:
            raise ValueError("market_pipeline needs a data interval or params interval_start/interval_end")
        start, end = start or lo.isoformat(), end or hi.isoformat()
    return str(start), str(end)


@dag(
    dag_id="market_pipeline",
    schedule="@daily",
    start_date=datetime(2017, 10, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["market", "main-job"],
    params={
        "interval_start": Param(None, type=["null", "string"], description="ISO start; default: data interval"),
        "interval_end": Param(None, type=["null", "string"], description="ISO end; default: data interval"),
        "trade": Param(True, type="boolean", description="Run the paper trader on the scored test period"),
    },
    doc_md=__doc__,
)
def market_pipeline() -> None:
    @task
    def ingest() -> dict[str, Any]:
        from pipeline import market

        return market.run_task("ingest", *_interval())

    @task
    def land(_: Any) -> dict[str, Any]:
        from pipeline import market

        return market.run_task("land", *_interval())

    @task
    def silver(_: Any) -> dict[str, Any]:
        from pipeline import market

        return market.run_task("silver", *_interval())

    @task
    def gold(_: Any) -> dict[str, Any]:
        from pipeline import market

        return market.run_task("gold", *_interval())

    @task
    def train(_: Any) -> dict[str, Any]:
        from pipeline import market

        return market.run_task("train", *_interval())

    @task
    def score(trained: Any) -> dict[str, Any]:
        from pipeline import market

        return market.run_task("score", *_interval(), model=trained)

    @task
    def trade(scored: Any) -> dict[str, Any]:
        from pipeline import market

        if not get_current_context()["params"].get("trade", True):
            return {"skipped": "params.trade is false"}
        return market.run_task("trade", *_interval(), scored=scored)

    trade(score(train(gold(silver(land(ingest()))))))


market_pipeline_dag = market_pipeline()
