"""bronze.market_trades (+ bronze.market_whales) -> silver.trades: typed, one row per trade id, whale flag.

A trade can reach bronze more than once (the websocket and the REST backfill after a drop
overlap, a producer retries): the first landed copy wins and the others are counted in
``duplicates``. ``is_whale`` is true when the connector published the trade on
``market.whales`` (its detector's threshold is kept in ``whale_threshold``): the flag in the
lake is exactly what strategies saw live.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from cryptolake import topics
from cryptolake.logs import get_logger
from cryptolake.settings import Settings, get_settings
from cryptolake.tables import SILVER_TRADES
from spark_jobs.silver.market_common import MarketSilverResult, first_copy, read_bronze, run_market_silver

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = get_logger(__name__)

TRADE_PAYLOAD_DDL = "exchange STRING, symbol STRING, trade_id STRING, price DOUBLE, amount DOUBLE, " \
                    "side STRING, source STRING"
WHALE_PAYLOAD_DDL = "exchange STRING, symbol STRING, trade_id STRING, notional DOUBLE, threshold DOUBLE"


def build_trades(raw: DataFrame, whales: DataFrame | None) -> DataFrame:
    """Parsed bronze trades -> silver.trades columns (without ``duplicates``)."""
    from pyspark.sql import functions as F

    trades = raw.select(
        F.col("p.exchange").alias("exchange"), F.col("p.symbol").alias("symbol"),
        F.col("p.trade_id").alias("trade_id"), "event_time", "available_time", "ingest_time",
        F.col("p.price").alias("price"), F.col("p.amount").alias("amount"),
        (F.col("p.price") * F.col("p.amount")).alias("notional"), F.col("p.side").alias("side"),
        F.col("p.source").alias("source"), "kafka_time", "partition", "offset",
        F.to_date("event_time").alias("event_date"),
    )
    if whales is None:
        return trades.withColumn("is_whale", F.lit(False)).withColumn("whale_threshold", F.lit(None).cast("double"))
    flagged = first_copy(
        whales.select(F.col("p.exchange").alias("exchange"), F.col("p.symbol").alias("symbol"),
                      F.col("p.trade_id").alias("trade_id"), F.col("p.threshold").alias("whale_threshold"),
                      "ingest_time", "kafka_time", "partition", "offset"),
        ("exchange", "symbol", "trade_id"),
    ).select("exchange", "symbol", "trade_id", "whale_threshold")
    return (trades.join(flagged, ["exchange", "symbol", "trade_id"], "left")
                  .withColumn("is_whale", F.col("whale_threshold").isNotNull()))


def run_silver_trades(start: datetime, end: datetime, settings: Settings | None = None) -> MarketSilverResult:
    """Build silver.trades for trades in ``[start, end)`` and MERGE them (idempotent per interval)."""
    from spark_jobs.session import get_spark

    settings = settings or get_settings()
    whales = read_bronze(get_spark(settings), topics.MARKET_WHALES, WHALE_PAYLOAD_DDL, start, end, settings)
    if whales is None:
        log.warning("silver.trades.no_whales_table", extra={"topic": topics.MARKET_WHALES,
                                                            "effect": "is_whale is false for every trade"})
    return run_market_silver(SILVER_TRADES, topics.MARKET_TRADES, TRADE_PAYLOAD_DDL,
                             lambda raw: build_trades(raw, whales), start, end, settings,
                             required=("price", "amount", "event_time"))
