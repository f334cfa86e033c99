"""Kafka topic names (``<domain>.<kind>``) and their dead-letter topics."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptolake.settings import Settings

MARKET_OHLCV = "market.ohlcv"
MARKET_TRADES = "market.trades"
MARKET_BOOK = "market.book"
MARKET_TICKER = "market.ticker"
MARKET_VENUE_FLAGS = "market.venue_flags"
MARKET_WHALES = "market.whales"
NEWS_ARTICLES = "news.articles"
SOCIAL_POSTS = "social.posts"
CHAIN_BLOCKS = "chain.blocks"
CHAIN_TRANSFERS = "chain.transfers"
SIGNALS = "signals"
TRADER_EVENTS = "trader.events"


def dlq(topic: str) -> str:
    """The dead-letter topic of ``topic``."""
    return f"dlq.{topic}"


def market_key(exchange: str, symbol: str) -> str:
    """Message key for market data: ``exchange:symbol``."""
    return f"{exchange}:{symbol}"

# --- alternative data (issue #5) -------------------------------------------------------
MACRO_OBSERVATIONS = "macro.observations"
CHAIN_DAILY_STATS = "chain.daily_stats"


# --- replication (issue #15) -------------------------------------------------------------
def replication(settings: Settings | None = None) -> tuple[int, dict[str, str]]:
    """(replication factor, topic configs) for a topic cryptolake creates, from ``kafka.*`` settings.

    One broker: 1 and ``min.insync.replicas=1``; the local three-broker cluster (and production):
    3 and 2, so an ``acks=all`` write survives the loss of one broker and never lands on one copy only.
    """
    from cryptolake.errors import ConfigError
    from cryptolake.settings import get_settings

    k = (settings or get_settings()).kafka
    if k.min_insync_replicas > k.replication_factor:
        raise ConfigError(
            f"kafka.min_insync_replicas={k.min_insync_replicas} exceeds kafka.replication_factor="
            f"{k.replication_factor}: no acks=all write could ever succeed"
        )
    return k.replication_factor, {"min.insync.replicas": str(k.min_insync_replicas)}
