"""Book metrics and tickers streamed with ccxt.pro from the local exchange replaying a real Binance capture."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from cryptolake.schemas import BookMetricsV1, Message, TickerV1
from ingest.exchange.connector import VenueConfig, forget_instances
from ingest.exchange.streams import BookStream, TickerStream
from ingest.localexchange.server import LocalExchange, LocalExchangeConfig
from tests.ingest.conftest import reference_book


def test_book_stream_publishes_interval_metrics_equal_to_areference_book(capture_path, capture):
    ex = LocalExchange(LocalExchangeConfig(captures=(capture_path,), speed=8.0))
    ex.start()
    forget_instances()
    got: list[Message] = []
    try:
        cfg = VenueConfig(exchange_id="binance", symbols=("BTC/USDT",), base_url=ex.base_url)
        stream = BookStream(cfg, "BTC/USDT", got.append, interval_ms=1000)

        async def go():
            try:
                await asyncio.wait_for(stream.run(asyncio.Event(), max_intervals=4), 90)
            finally:
                await stream.exchange.close()

        asyncio.run(go())
    finally:
        ex.stop()
    books = [m for m in got if isinstance(m, BookMetricsV1)]
    assert len(books) == 4
    ends = [m.event_time for m in books]
    assert ends == sorted(ends) and all(e % 1000 == 0 for e in ends)
    assert sum(m.updates for m in books) >= 4
    for m in books:
        last, bids, asks = reference_book(capture, m.last_update_id)
        assert last == m.last_update_id
        bb, ba = max(bids), min(asks)
        assert (m.best_bid, m.best_ask) == (bb, ba)
        assert m.mid == pytest.approx((bb + ba) / 2)
        top5 = sorted(bids, reverse=True)[:5]
        assert m.depth_bid["5"] == pytest.approx(sum(bids[p] for p in top5))
        micro = (bb * asks[ba] + ba * bids[bb]) / (bids[bb] + asks[ba])
        assert m.microprice == pytest.approx(micro)
        # the book state is the last one inside the interval: it was recorded before the interval end
        diff_time = next(e.data["E"] for e in capture.of_kind("depth") if e.data["u"] == m.last_update_id)
        assert m.event_time - 1000 <= diff_time < m.event_time


def test_ticker_stream_uses_the_websocket_and_reports_recorded_prices(capture_path, capture):
    ex = LocalExchange(LocalExchangeConfig(captures=(capture_path,), speed=8.0))
    ex.start()
    forget_instances()
    got: list[Message] = []
    try:
        # ccxt's binance watches the mini ticker (no bid/ask) unless told to use the full one
        cfg = VenueConfig(exchange_id="binance", symbols=("BTC/USDT",), base_url=ex.base_url,
                          options={"watchTickers": {"name": "ticker"}})
        stream = TickerStream(cfg, "BTC/USDT", got.append)
        assert stream.uses_websocket

        async def go():
            try:
                await asyncio.wait_for(stream.run(asyncio.Event(), max_tickers=3), 90)
            finally:
                await stream.exchange.close()

        asyncio.run(go())
        polls = ex.faults.request_log
    finally:
        ex.stop()
    tickers = [m for m in got if isinstance(m, TickerV1)]
    assert len(tickers) == 3
    prices = {float(e.data["p"]) for e in capture.of_kind("trade")}
    times = [t.event_time for t in tickers]
    assert all(b - a >= 1000 for a, b in itertools.pairwise(times))  # Binance's 1 s cadence
    for t in tickers:
        assert t.last in prices
        assert t.bid is not None and t.ask is not None and t.bid < t.ask
    # no REST ticker polling: the data came over the websocket
    assert not any("ticker" in path for _, path, _ in polls)


def test_ticker_stream_polls_rest_where_the_venue_has_no_websocket_ticker(capture_path, capture):
    ex = LocalExchange(LocalExchangeConfig(captures=(capture_path,), speed=8.0))
    ex.start()
    forget_instances()
    got: list[Message] = []
    try:
        cfg = VenueConfig(exchange_id="binance", symbols=("BTC/USDT",), base_url=ex.base_url, poll_interval_s=0.3)
        stream = TickerStream(cfg, "BTC/USDT", got.append)
        # capability data, as a venue without websocket tickers declares it
        stream.exchange.has = {**stream.exchange.has, "watchTicker": False}
        assert not stream.uses_websocket

        async def go():
            try:
                await asyncio.wait_for(stream.run(asyncio.Event(), max_tickers=2), 60)
            finally:
                await stream.exchange.close()

        asyncio.run(go())
        polls = [path for _, path, status in ex.faults.request_log if "ticker/24hr" in path and status == 200]
    finally:
        ex.stop()
    tickers = [m for m in got if isinstance(m, TickerV1)]
    assert len(tickers) == 2 and len(polls) >= 2
    recorded = {float(e.data["p"]) for e in capture.of_kind("trade")}
    assert all(t.last in recorded for t in tickers)
    assert tickers[0].event_time < tickers[1].event_time


def test_book_stream_resyncs_after_a_sequence_gap_and_never_publishes_a_wrong_book(capture_path, capture):
    ex = LocalExchange(LocalExchangeConfig(captures=(capture_path,), speed=8.0))
    ex.start()
    forget_instances()
    got: list[Message] = []
    try:
        cfg = VenueConfig(exchange_id="binance", symbols=("BTC/USDT",), base_url=ex.base_url, base_delay_s=0.2)
        stream = BookStream(cfg, "BTC/USDT", got.append, interval_ms=1000)

        async def go():
            stop = asyncio.Event()
            task = asyncio.create_task(stream.run(stop, max_intervals=8))
            while stream.published < 2:
                await asyncio.sleep(0.02)
            ex.faults.apply(drop_depth_next=2)  # two diffs never reach the client: U/u no longer continue
            try:
                await asyncio.wait_for(task, 90)
            finally:
                await stream.exchange.close()

        asyncio.run(go())
        dropped = ex.faults.depth_dropped
    finally:
        ex.stop()
    assert dropped == 2
    assert stream.resyncs >= 1  # ccxt raised InvalidNonce on the gap; the book was rebuilt from a snapshot
    books = [m for m in got if isinstance(m, BookMetricsV1)]
    assert len(books) == 8 and sum(m.resyncs for m in books) == stream.resyncs
    for m in books:  # before and after the gap, every published book equals the reference
        _, bids, asks = reference_book(capture, m.last_update_id)
        assert (m.best_bid, m.best_ask) == (max(bids), min(asks))
        assert m.depth_ask["20"] == pytest.approx(sum(asks[p] for p in sorted(asks)[:20]))
