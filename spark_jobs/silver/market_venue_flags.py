"""bronze.market_venue_flags -> silver.venue_flags: cross-venue deviation and staleness per venue and interval.

Strategies read ``flagged`` (deviates or stale) to ignore a venue's price for that interval.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from cryptolake import topics
from cryptolake.settings import Settings
from cryptolake.tables import SILVER_VENUE_FLAGS
from spark_jobs.silver.market_common import MarketSilverResult, run_market_silver

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

FLAG_PAYLOAD_DDL = "exchange STRING, symbol STRING, price DOUBLE, median DOUBLE, deviation_bps DOUBLE, " \
                   "deviates BOOLEAN, stale BOOLEAN, threshold_bps DOUBLE"


def build_venue_flags(raw: DataFrame) -> DataFrame:
    """Parsed bronze venue flags -> silver.venue_flags columns (without ``duplicates``)."""
    from pyspark.sql import functions as F

    return raw.select(
        F.col("p.exchange").alias("exchange"), F.col("p.symbol").alias("symbol"),
        "event_time", "available_time", "ingest_time",
        *[F.col(f"p.{c}").alias(c) for c in ("price", "median", "deviation_bps", "deviates", "stale")],
        (F.col("p.deviates") | F.col("p.stale")).alias("flagged"), F.col("p.threshold_bps").alias("threshold_bps"),
        "kafka_time", "partition", "offset", F.to_date("event_time").alias("event_date"),
    )


def run_silver_venue_flags(start: datetime, end: datetime, settings: Settings | None = None) -> MarketSilverResult:
    """Build silver.venue_flags for intervals in ``[start, end)`` and MERGE them (idempotent per interval)."""
    return run_market_silver(SILVER_VENUE_FLAGS, topics.MARKET_VENUE_FLAGS, FLAG_PAYLOAD_DDL, build_venue_flags,
                             start, end, settings, required=("price", "deviates", "stale"))
