"""bronze.market_book -> silver.book_metrics: one row of order-book metrics per venue, symbol and interval end.

Depth and imbalance arrive as ``{"levels": value}`` maps in :class:`~cryptolake.schemas.BookMetricsV1`;
silver flattens them to ``depth_bid_<n>``, ``depth_ask_<n>`` and ``imbalance_<n>`` for the
levels in :data:`cryptolake.tables.BOOK_LEVELS` (plain columns compare and query well).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from cryptolake import topics
from cryptolake.settings import Settings
from cryptolake.tables import BOOK_LEVELS, SILVER_BOOK_METRICS
from spark_jobs.silver.market_common import MarketSilverResult, run_market_silver

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

BOOK_PAYLOAD_DDL = (
    "exchange STRING, symbol STRING, last_update_id BIGINT, best_bid DOUBLE, best_ask DOUBLE, mid DOUBLE, "
    "spread DOUBLE, spread_bps DOUBLE, microprice DOUBLE, depth_bid MAP<STRING, DOUBLE>, "
    "depth_ask MAP<STRING, DOUBLE>, imbalance MAP<STRING, DOUBLE>, updates INT, resyncs INT"
)


def build_book_metrics(raw: DataFrame) -> DataFrame:
    """Parsed bronze book metrics -> silver.book_metrics columns (without ``duplicates``)."""
    from pyspark.sql import functions as F

    flat = [F.col(f"p.{m}")[str(n)].alias(f"{col}_{n}")
            for m, col in (("depth_bid", "depth_bid"), ("depth_ask", "depth_ask"), ("imbalance", "imbalance"))
            for n in BOOK_LEVELS]
    return raw.select(
        F.col("p.exchange").alias("exchange"), F.col("p.symbol").alias("symbol"),
        "event_time", "available_time", "ingest_time",
        *[F.col(f"p.{c}").alias(c) for c in ("last_update_id", "best_bid", "best_ask", "mid", "spread",
                                             "spread_bps", "microprice")],
        *flat, F.col("p.updates").alias("updates"), F.col("p.resyncs").alias("resyncs"),
        "kafka_time", "partition", "offset", F.to_date("event_time").alias("event_date"),
    )


def run_silver_book_metrics(start: datetime, end: datetime, settings: Settings | None = None) -> MarketSilverResult:
    """Build silver.book_metrics for intervals ending in ``[start, end)`` and MERGE them."""
    return run_market_silver(SILVER_BOOK_METRICS, topics.MARKET_BOOK, BOOK_PAYLOAD_DDL, build_book_metrics,
                             start, end, settings, required=("best_bid", "best_ask", "mid"))
