"""End to end: local exchange (real Binance capture) -> connector -> cryptolake.bus.Producer -> Kafka ->
land_topic (exactly once, quarantine) -> silver.trades / book_metrics / tickers / venue_flags.

Each run uses its own venue name, so the assertions hold on a broker that already carries
records of earlier runs (the landing checkpoint is new per session and starts at earliest).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime

import pandas as pd
import pytest

from cryptolake import topics
from cryptolake.bus import Producer, ensure_topics
from cryptolake.schemas import BookMetricsV1, Message, TickerV1, TradeV1, VenueFlagV1, WhaleTradeV1
from cryptolake.tables import (
    SILVER_BOOK_METRICS,
    SILVER_TICKERS,
    SILVER_TRADES,
    SILVER_VENUE_FLAGS,
    bronze_spec,
    dead_letter_spec,
)
from ingest.exchange.connector import TradeStream, VenueConfig, forget_instances
from ingest.exchange.crossvenue import CrossVenueConfig, flag_messages, venue_flags
from ingest.exchange.streams import BookStream, TickerStream
from ingest.exchange.whales import WhaleConfig, WhaleDetector
from ingest.localexchange.data import parse_cdd_csv
from ingest.localexchange.server import LocalExchange, LocalExchangeConfig
from spark_jobs.bronze.landing import land_dead_letters, land_topic
from spark_jobs.silver.market_book import run_silver_book_metrics
from spark_jobs.silver.market_ticker import run_silver_tickers
from spark_jobs.silver.market_trades import run_silver_trades
from spark_jobs.silver.market_venue_flags import run_silver_venue_flags

pytestmark = [pytest.mark.kafka, pytest.mark.spark]

TOPICS = (topics.MARKET_TRADES, topics.MARKET_WHALES, topics.MARKET_BOOK, topics.MARKET_TICKER,
          topics.MARKET_VENUE_FLAGS)
CAPTURE_DAY = (datetime(2024, 8, 8, tzinfo=UTC), datetime(2024, 8, 10, tzinfo=UTC))
WHALE_NOTIONAL = 2_500.0  # USDT (~0.04 BTC): low, so a few seconds of the capture hold several whales


@pytest.fixture(scope="module")
def run(shared_data, kafka_bootstrap, spark, lake_settings):
    """Stream the capture through Kafka once; land every topic; return what was produced."""
    venue = f"localex-{uuid.uuid4().hex[:8]}"
    capture = shared_data / "market/orderbook/hftbacktest/btcusdt_20240808.gz"
    ensure_topics(TOPICS, lake_settings)
    ex = LocalExchange(LocalExchangeConfig(captures=(capture,), speed=8.0))
    ex.start()
    forget_instances()
    produced: list[Message] = []
    try:
        with Producer(lake_settings, client_id="test-market-pipeline") as producer:
            def sink(msg: Message) -> None:
                produced.append(msg)
                producer.send_message(msg)

            cfg = VenueConfig(exchange_id="binance", venue_name=venue, symbols=("BTC/USDT",), base_url=ex.base_url,
                              options={"watchTickers": {"name": "ticker"}})
            trades = TradeStream(cfg, "BTC/USDT", sink,
                                 whales=WhaleDetector(WhaleConfig(absolute_notional=WHALE_NOTIONAL, quantile=None)))
            book = BookStream(cfg, "BTC/USDT", sink, interval_ms=1000, exchange=trades.exchange)
            ticker = TickerStream(cfg, "BTC/USDT", sink, exchange=trades.exchange)

            async def go() -> None:
                stop = asyncio.Event()
                try:
                    await asyncio.wait_for(asyncio.gather(trades.run(stop, max_trades=400),
                                                          book.run(stop, max_intervals=5),
                                                          ticker.run(stop, max_tickers=3)), 120)
                finally:
                    await trades.exchange.close()

            asyncio.run(go())
            # Real venue flags: the multi-venue ETH/USD closes of the last 200 common hours (kmerisalu).
            frames = {}
            for path in sorted((shared_data / "market/ohlcv_1h/kmerisalu").glob("*.csv.gz")):
                frames[f"{venue}-{path.name.split('_')[0].lower()}"] = pd.Series(
                    {c.open_time: c.close for c in parse_cdd_csv(path)})
            wide = pd.DataFrame(frames).dropna().sort_index().iloc[-200:]
            cv = CrossVenueConfig(threshold_bps=50, stale_intervals=6)
            flags = flag_messages(venue_flags(wide, cv), "ETH/USD", interval_ms=3_600_000,
                                  threshold_bps=cv.threshold_bps, ingest_ms=int(time.time() * 1000))
            for f in flags:
                sink(f)
            # A producer retry re-sends 20 trades (copies of real records, same ids).
            resent = [m for m in produced if isinstance(m, TradeV1)][:20]
            for m in resent:
                producer.send_message(m)
            # Two malformed records written raw, bypassing producer validation (what a buggy writer does).
            key = topics.market_key(venue, "BTC/USDT")
            producer.send_raw(topics.MARKET_TRADES, key, json.dumps({"schema_version": 1, "exchange": venue}))
            bad_price = resent[0].model_dump() | {"price": -5.0, "trade_id": "bad-price"}
            producer.send_raw(topics.MARKET_TRADES, key, json.dumps(bad_price))
            # The validating path: the producer refuses it and dead-letters it to dlq.market.trades.
            refused = producer.send(topics.MARKET_TRADES, resent[1].model_dump() | {"amount": 0.0}, key)
            assert refused is False
    finally:
        ex.stop()
    first = {t: land_topic(t, settings=lake_settings) for t in TOPICS}
    return {"venue": venue, "produced": produced, "resent": resent, "flags": flags, "first": first,
            "wide": wide}


def _rows(spark, spec, settings, where):
    return spark.read.format("delta").load(spec.path(settings)).where(where).collect()


def test_trades_land_exactly_once_and_silver_has_every_trade_id_once(run, spark, lake_settings):
    venue = run["venue"]
    trades = [m for m in run["produced"] if isinstance(m, TradeV1)]
    assert len(trades) >= 400
    key = topics.market_key(venue, "BTC/USDT")
    bronze = _rows(spark, bronze_spec(topics.MARKET_TRADES), lake_settings, f"key = '{key}'")
    assert len(bronze) == len(trades) + len(run["resent"])  # every produced record once (the re-sends too)
    again = land_topic(topics.MARKET_TRADES, settings=lake_settings)
    assert (again.rows_landed, again.rows_quarantined) == (0, 0)

    start, end = CAPTURE_DAY
    first = run_silver_trades(start, end, lake_settings)
    silver = _rows(spark, SILVER_TRADES, lake_settings, f"exchange = '{venue}'")
    ids = [r["trade_id"] for r in silver]
    assert sorted(ids) == sorted(m.trade_id for m in trades) and len(ids) == len(set(ids))
    by_id = {r["trade_id"]: r for r in silver}
    for m in trades:
        r = by_id[m.trade_id]
        assert (r["price"], r["amount"], r["side"]) == (m.price, m.amount, m.side)
        assert r["event_time"].replace(tzinfo=UTC) == datetime.fromtimestamp(m.event_time / 1000, UTC)
    assert sum(r["duplicates"] for r in silver) == len(run["resent"])
    assert first.duplicates >= len(run["resent"])
    whales = {m.trade_id for m in run["produced"] if isinstance(m, WhaleTradeV1)}
    assert whales, "the capture has trades above the whale notional"
    assert {r["trade_id"] for r in silver if r["is_whale"]} == whales
    assert all(r["notional"] > WHALE_NOTIONAL for r in silver if r["is_whale"])
    # Idempotent: the same interval again changes nothing.
    rerun = run_silver_trades(start, end, lake_settings)
    assert (rerun.inserted, rerun.updated) == (0, 0)


def test_malformed_trades_are_quarantined_with_the_reason(run, spark, lake_settings):
    key = topics.market_key(run["venue"], "BTC/USDT")
    rows = _rows(spark, dead_letter_spec(topics.MARKET_TRADES), lake_settings, f"key = '{key}'")
    reasons = sorted(r["reason"] for r in rows)
    assert len(rows) == 2
    assert any("price" in r and "-5.0" in r for r in reasons)
    # the first missing field is named, with pydantic's reason
    assert any(r.startswith("invalid event_time=") and "Field required" in r for r in reasons)
    silver = _rows(spark, SILVER_TRADES, lake_settings, "trade_id = 'bad-price'")
    assert silver == []
    # Producer-side dead letters land too, with the producer's reason.
    land_dead_letters(topics.MARKET_TRADES, settings=lake_settings)
    dead = _rows(spark, dead_letter_spec(topics.dlq(topics.MARKET_TRADES)), lake_settings, f"key = '{key}'")
    assert len(dead) == 1
    assert dead[0]["reason"].startswith("invalid amount=0.0") and json.loads(dead[0]["payload"])["amount"] == 0.0


def test_book_metrics_tickers_and_venue_flags_reach_silver(run, spark, lake_settings):
    venue = run["venue"]
    start, end = CAPTURE_DAY
    books = {m.event_time: m for m in run["produced"] if isinstance(m, BookMetricsV1)}
    assert len(books) >= 5
    run_silver_book_metrics(start, end, lake_settings)
    silver_books = _rows(spark, SILVER_BOOK_METRICS, lake_settings, f"exchange = '{venue}'")
    assert len(silver_books) == len(books)
    for r in silver_books:
        m = books[int(r["event_time"].replace(tzinfo=UTC).timestamp() * 1000)]
        assert (r["best_bid"], r["best_ask"], r["last_update_id"]) == (m.best_bid, m.best_ask, m.last_update_id)
        assert r["depth_bid_5"] == pytest.approx(m.depth_bid["5"]) and r["imbalance_20"] == pytest.approx(
            m.imbalance["20"])
    again = land_topic(topics.MARKET_BOOK, settings=lake_settings)
    assert again.rows_landed == 0

    tickers = [m for m in run["produced"] if isinstance(m, TickerV1)]
    run_silver_tickers(start, end, lake_settings)
    silver_tickers = _rows(spark, SILVER_TICKERS, lake_settings, f"exchange = '{venue}'")
    assert len(silver_tickers) == len(tickers) == 3
    assert sorted(r["last"] for r in silver_tickers) == sorted(m.last for m in tickers if m.last is not None)
    assert all(r["bid"] < r["ask"] and r["spread_bps"] > 0 for r in silver_tickers)

    flags: list[VenueFlagV1] = run["flags"]
    times = [f.event_time for f in flags]
    result = run_silver_venue_flags(datetime.fromtimestamp(min(times) / 1000, UTC),
                                    datetime.fromtimestamp(max(times) / 1000 + 1, UTC), lake_settings)
    silver_flags = _rows(spark, SILVER_VENUE_FLAGS, lake_settings, f"exchange LIKE '{venue}-%'")
    assert len(silver_flags) == len(flags) and result.rows >= len(flags)
    expected = {(f.exchange, f.event_time): f.deviates or f.stale for f in flags}
    got = {(r["exchange"], int(r["event_time"].replace(tzinfo=UTC).timestamp() * 1000)): r["flagged"]
           for r in silver_flags}
    assert got == expected
    assert 0 < sum(got.values()) < len(got)  # real divergences flagged, most hours clean
