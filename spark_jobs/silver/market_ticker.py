"""bronze.market_ticker -> silver.tickers: typed tickers with mid and spread, one row per venue, symbol, time."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from cryptolake import topics
from cryptolake.settings import Settings
from cryptolake.tables import SILVER_TICKERS
from spark_jobs.silver.market_common import MarketSilverResult, run_market_silver

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

TICKER_PAYLOAD_DDL = "exchange STRING, symbol STRING, bid DOUBLE, ask DOUBLE, last DOUBLE, base_volume DOUBLE"


def build_tickers(raw: DataFrame) -> DataFrame:
    """Parsed bronze tickers -> silver.tickers columns; mid/spread only when both sides are quoted."""
    from pyspark.sql import functions as F

    bid, ask = F.col("p.bid"), F.col("p.ask")
    quoted = bid.isNotNull() & ask.isNotNull() & (bid > 0) & (ask > 0)
    mid = (bid + ask) / 2
    return raw.select(
        F.col("p.exchange").alias("exchange"), F.col("p.symbol").alias("symbol"),
        "event_time", "available_time", "ingest_time",
        bid.alias("bid"), ask.alias("ask"), F.col("p.last").alias("last"),
        F.col("p.base_volume").alias("base_volume"),
        F.when(quoted, mid).alias("mid"), F.when(quoted, (ask - bid) / mid * 1e4).alias("spread_bps"),
        "kafka_time", "partition", "offset", F.to_date("event_time").alias("event_date"),
    )


def run_silver_tickers(start: datetime, end: datetime, settings: Settings | None = None) -> MarketSilverResult:
    """Build silver.tickers for tickers in ``[start, end)`` and MERGE them (idempotent per interval)."""
    return run_market_silver(SILVER_TICKERS, topics.MARKET_TICKER, TICKER_PAYLOAD_DDL, build_tickers,
                             start, end, settings)
