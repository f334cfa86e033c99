"""Exchange and alternative-data lanes: land their topics and build silver/gold, hourly per data interval.

Wiring only: each task calls one function of ``pipeline.lanes``. The exchange lane lands
``market.trades``, ``market.whales``, ``market.book``, ``market.ticker`` and ``market.venue_flags``
and MERGEs their silver tables; the alternative-data lane lands news, social, chain (blocks,
transfers, daily statistics) and macro topics, builds ``silver.documents`` and
``silver.chain_activity``, then ``gold.alt_features`` for the bars of the interval. Every task is
idempotent for its interval.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import dag, task

from dags.context import data_interval

DEFAULT_ARGS = {"owner": "cryptolake", "retries": 2, "retry_delay": timedelta(minutes=1)}


def _interval() -> tuple[str, str]:
    return data_interval("market_data_lanes")


@dag(
    dag_id="market_data_lanes",
    schedule="@hourly",
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["exchange", "altdata"],
    doc_md=__doc__,
)
def market_data_lanes() -> None:
    @task
    def exchange_silver() -> dict[str, Any]:
        from pipeline import lanes

        return lanes.exchange_silver(*_interval())

    @task
    def altdata_silver() -> dict[str, Any]:
        from pipeline import lanes

        return lanes.altdata_silver(*_interval())

    @task
    def altdata_gold(_: Any) -> dict[str, Any]:
        from pipeline import lanes

        return lanes.altdata_gold(*_interval())

    exchange_silver()
    altdata_gold(altdata_silver())


market_data_lanes_dag = market_data_lanes()
