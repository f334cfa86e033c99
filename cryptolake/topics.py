"""Kafka topic names (``<domain>.<kind>``) and their dead-letter topics."""

from __future__ import annotations

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
