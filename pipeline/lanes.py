"""Task functions of the exchange and alternative-data lanes (what ``dags/market_data_lanes.py`` wires).

Each lands its topics exactly once, then runs its silver/gold jobs for the data interval; every
step is idempotent, so a retried or re-run interval changes nothing.
"""

from __future__ import annotations

from typing import Any

from cryptolake import topics
from cryptolake.settings import Settings, get_settings
from pipeline.interval import Interval
from pipeline.results import as_record

EXCHANGE_TOPICS = (topics.MARKET_TRADES, topics.MARKET_WHALES, topics.MARKET_BOOK, topics.MARKET_TICKER,
                   topics.MARKET_VENUE_FLAGS)
# every alternative-data topic a connector publishes: the silver jobs read news, social and chain blocks and
# transfers; the daily chain statistics and macro series land in bronze for SQL and training sets
ALT_TOPICS = (topics.NEWS_ARTICLES, topics.SOCIAL_POSTS, topics.CHAIN_BLOCKS, topics.CHAIN_TRANSFERS,
              topics.CHAIN_DAILY_STATS, topics.MACRO_OBSERVATIONS)


def land(topic_names: tuple[str, ...], settings: Settings | None = None) -> dict[str, Any]:
    """Land each topic (and its producer-side dead letters) into bronze/quarantine."""
    from cryptolake.bus import ensure_topics
    from spark_jobs.bronze.landing import land_dead_letters, land_topic

    settings = settings or get_settings()
    ensure_topics(topic_names, settings)  # a topic nobody produced to yet has nothing to land, not an error
    out: dict[str, Any] = {}
    for name in topic_names:
        out[name] = {"landed": as_record(land_topic(name, settings=settings)),
                     "dead_letters": as_record(land_dead_letters(name, settings=settings))}
    return out


def exchange_silver(start: str, end: str, settings: Settings | None = None) -> dict[str, Any]:
    """silver.trades, book_metrics, tickers and venue_flags for the interval."""
    from spark_jobs.silver.market_book import run_silver_book_metrics
    from spark_jobs.silver.market_ticker import run_silver_tickers
    from spark_jobs.silver.market_trades import run_silver_trades
    from spark_jobs.silver.market_venue_flags import run_silver_venue_flags

    settings = settings or get_settings()
    iv = Interval.parse(start, end)
    landed = land(EXCHANGE_TOPICS, settings)
    jobs = {"trades": run_silver_trades, "book_metrics": run_silver_book_metrics,
            "tickers": run_silver_tickers, "venue_flags": run_silver_venue_flags}
    return {"landed": landed, **{k: as_record(job(iv.start, iv.end, settings)) for k, job in jobs.items()}}


def altdata_silver(start: str, end: str, settings: Settings | None = None) -> dict[str, Any]:
    """silver.documents and silver.chain_activity for the interval."""
    from spark_jobs.silver.chain import run_silver_chain
    from spark_jobs.silver.documents import run_silver_documents

    settings = settings or get_settings()
    iv = Interval.parse(start, end)
    landed = land(ALT_TOPICS, settings)
    return {"landed": landed,
            "documents": as_record(run_silver_documents(iv.start, iv.end, settings)),
            "chain": as_record(run_silver_chain(iv.start, iv.end, settings))}


def altdata_gold(start: str, end: str, settings: Settings | None = None) -> dict[str, Any]:
    """gold.alt_features for the bars of the interval."""
    from spark_jobs.gold.alt_features import run_gold_alt_features

    iv = Interval.parse(start, end)
    return as_record(run_gold_alt_features(iv.start, iv.end, settings or get_settings()))
