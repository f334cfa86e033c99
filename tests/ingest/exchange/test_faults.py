"""Fault drills against the local exchange: a 60-second 429 storm during an OHLCV backfill, a dropped
websocket, added latency, 5xx answers, a timeout after the order was accepted, and stale data.

The storm lasts the issue's 60 seconds (``CRYPTOLAKE_STORM_S`` overrides it for a quick local run;
the assertions are the same for any duration).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

import pytest

from cryptolake import errors
from cryptolake.schemas import Message, TradeV1, VenueFlagV1
from ingest.exchange.connector import TradeStream, VenueClient, VenueConfig, forget_instances
from ingest.exchange.crossvenue import CrossVenueConfig, CrossVenueMonitor
from ingest.localexchange.data import parse_cdd_csv
from ingest.localexchange.server import LocalExchange, LocalExchangeConfig

STORM_S = float(os.environ.get("CRYPTOLAKE_STORM_S", "60"))


def test_429_storm_ends_with_every_candle_landed_once(shared_data, caplog):
    path = shared_data / "market/ohlcv_1h/ingiorn/Binance_ETHUSDT_1h.csv.gz"
    candles = parse_cdd_csv(path)
    ex = LocalExchange(LocalExchangeConfig(candle_files={"ETH/USDT": path}, candle_start_index=10**9, speed=0))
    ex.start()
    forget_instances()
    try:
        ex.faults.apply(weight_limit=120, weight_window_s=2.0, retry_after_s=1)
        cfg = VenueConfig(exchange_id="binance", symbols=("ETH/USDT",), timeframe="1h", base_url=ex.base_url,
                          ohlcv_page_limit=250, rate_limit_ms=120, max_attempts=2, base_delay_s=0.2,
                          max_delay_s=2.0)
        landed: dict[int, int] = {}

        def sink(msg):
            landed[msg.event_time] = landed.get(msg.event_time, 0) + 1
            if len(landed) == 500 and landed[msg.event_time] == 1:
                ex.faults.apply(storm_s=STORM_S)  # the storm starts mid-backfill

        since, until = candles[2000].open_time, candles[4000].open_time
        client = VenueClient(cfg)
        caplog.set_level(logging.WARNING, logger="cryptolake.retry")
        with pytest.raises(errors.RateLimitedError):
            client.backfill_ohlcv("ETH/USDT", since, until, sink)  # 2 attempts cannot outlast the storm
        assert 500 <= len(landed) < 2000
        patient = VenueClient(cfg.model_copy(update={"max_attempts": int(STORM_S) + 10}), exchange=client.exchange)
        patient.backfill_ohlcv("ETH/USDT", since, until, sink, resume_point=lambda: max(landed))

        expected = [c.open_time for c in candles if since <= c.open_time < until]
        assert sorted(landed) == expected and set(landed.values()) == {1}
        retries = [r for r in caplog.records if r.getMessage() == "retry.scheduled"]
        assert len(retries) == client.retries + patient.retries and patient.retries >= 1
        assert ex.faults.rejected_429 >= 2
        # Rate under the limit: no 429 came from the weight limiter, only from the storm.
        ok = [(t, p) for t, p, s in ex.faults.request_log if s == 200 and "klines" in p]
        for i, (t, _) in enumerate(ok):
            in_window = sum(2 for t2, _ in ok[i:] if t2 - t < 2.0)
            assert in_window <= 120
    finally:
        ex.stop()


def test_dropped_websocket_reconnects_and_backfills_without_duplicates_or_holes(capture_path, capture):
    recorded = [int(e.data["t"]) for e in capture.of_kind("trade")]
    ex = LocalExchange(LocalExchangeConfig(captures=(capture_path,), speed=4.0))
    ex.start()
    forget_instances()
    try:
        cfg = VenueConfig(exchange_id="binance", symbols=("BTC/USDT",), base_url=ex.base_url, base_delay_s=0.3)
        got: list[Message] = []
        stream = TradeStream(cfg, "BTC/USDT", got.append)

        async def go():
            stop = asyncio.Event()
            task = asyncio.create_task(stream.run(stop, max_trades=600))
            while stream.published < 100:
                await asyncio.sleep(0.05)
            dropped = await asyncio.to_thread(ex.drop_websockets)
            await asyncio.wait_for(task, 120)
            await stream.exchange.close()
            return dropped

        assert asyncio.run(go()) >= 1
    finally:
        ex.stop()
    ids = [int(m.trade_id) for m in got if isinstance(m, TradeV1)]
    assert len(ids) == len(set(ids))  # no duplicates
    assert sorted(ids) == list(range(min(ids), max(ids) + 1))  # no holes
    assert set(ids) <= set(recorded)
    assert stream.reconnects >= 1 and stream.backfilled >= 1
    assert {m.source for m in got if isinstance(m, TradeV1)} == {"ws", "rest"}


KEY, SECRET = "fault-key-0001", "fault-secret-0001"


@pytest.fixture(scope="module")
def eth_path(shared_data):
    return shared_data / "market/ohlcv_1h/ingiorn/Binance_ETHUSDT_1h.csv.gz"


@pytest.fixture(scope="module")
def candle_exchange(eth_path):
    ex = LocalExchange(LocalExchangeConfig(candle_files={"ETH/USDT": eth_path}, candle_start_index=10**9, speed=0,
                                           api_keys={KEY: SECRET}))
    ex.start()
    yield ex
    ex.stop()


@pytest.fixture()
def venue(candle_exchange):
    candle_exchange.faults.reset()
    forget_instances()
    yield VenueConfig(exchange_id="binance", symbols=("ETH/USDT",), timeframe="1h", base_url=candle_exchange.base_url,
                      ohlcv_page_limit=100, base_delay_s=0.1, max_delay_s=0.5)
    candle_exchange.faults.reset()


def test_added_latency_slows_every_call_but_the_data_is_unchanged(candle_exchange, venue, eth_path):
    candles = parse_cdd_csv(eth_path)
    since, until = candles[100].open_time, candles[300].open_time
    client = VenueClient(venue)
    client.load_markets()
    candle_exchange.faults.apply(latency_ms=400)
    landed: list[int] = []
    t0 = time.perf_counter()
    n = client.backfill_ohlcv("ETH/USDT", since, until, lambda m: landed.append(m.event_time))
    elapsed = time.perf_counter() - t0
    assert n == 200 and landed == [c.open_time for c in candles[100:300]]
    assert elapsed >= 2 * 0.4  # two pages of 100, each delayed
    assert client.retries == 0


def test_5xx_answers_are_retried_then_the_backfill_succeeds(candle_exchange, venue, eth_path, caplog):
    candles = parse_cdd_csv(eth_path)
    since, until = candles[1000].open_time, candles[1250].open_time
    client = VenueClient(venue)
    client.load_markets()
    candle_exchange.faults.apply(fail_next=3, fail_status=503)
    caplog.set_level(logging.WARNING, logger="cryptolake.retry")
    landed: list[int] = []
    client.backfill_ohlcv("ETH/USDT", since, until, lambda m: landed.append(m.event_time))
    assert landed == [c.open_time for c in candles[1000:1250]]
    assert candle_exchange.faults.rejected_5xx == 3 and client.retries == 3
    retried = [r for r in caplog.records if r.getMessage() == "retry.scheduled"]
    assert [getattr(r, "error_type", None) for r in retried] == ["ServiceUnavailableError"] * 3


def test_5xx_for_longer_than_the_policy_raises_a_retryable_error(candle_exchange, venue, eth_path):
    candles = parse_cdd_csv(eth_path)
    client = VenueClient(venue.model_copy(update={"max_attempts": 2}))
    client.load_markets()
    candle_exchange.faults.apply(fail_next=5, fail_status=502)
    with pytest.raises(errors.ServiceUnavailableError):
        client.backfill_ohlcv("ETH/USDT", candles[10].open_time, candles[20].open_time, lambda m: None)


def test_timeout_after_the_order_was_accepted_is_reconciled_without_a_duplicate(candle_exchange, venue, monkeypatch):
    monkeypatch.setenv("FAULT_KEY", KEY)
    monkeypatch.setenv("FAULT_SECRET", SECRET)
    cfg = venue.model_copy(update={"api_key_env": "FAULT_KEY", "secret_env": "FAULT_SECRET", "timeout_ms": 1000})
    client = VenueClient(cfg)
    client.load_markets()
    price = float(client.exchange.fetch_ticker("ETH/USDT")["last"])
    candle_exchange.faults.apply(hang_after_accept_s=3.0)  # accept, then answer too late for the client
    order = client.place_order("ETH/USDT", "limit", "buy", 0.05, round(price * 0.5, 2),
                               client_order_id="drill-timeout-0001")
    assert client.reconciled == 1
    assert order["clientOrderId"] == "drill-timeout-0001" and order["status"] == "open"
    mine = [o for o in client.exchange.fetch_orders("ETH/USDT") if o["clientOrderId"] == "drill-timeout-0001"]
    assert len(mine) == 1  # no duplicate order
    assert len([o for o in candle_exchange.engine.orders.values()
                if o.client_order_id == "drill-timeout-0001"]) == 1
    client.exchange.cancel_order(order["id"], "ETH/USDT")


def test_stale_venue_is_flagged_by_the_cross_venue_monitor(shared_data):
    """Three venues replay their real ETH/USD hours in lock-step; one goes stale (replay frozen)."""
    names = ("Coinbase", "Kraken", "Bittrex")
    exchanges = {n.lower(): LocalExchange(LocalExchangeConfig(
        candle_files={"ETH/USD": shared_data / f"market/ohlcv_1h/kmerisalu/{n}_ETHUSD_1h.csv.gz"},
        speed=0, candle_start_index=17500)) for n in names}
    for ex in exchanges.values():
        ex.start()
    forget_instances()
    flags: list[VenueFlagV1] = []
    cv = CrossVenueConfig(threshold_bps=300, stale_intervals=6, min_venues=3, max_age_ms=2 * 3_600_000)
    monitor = CrossVenueMonitor("ETH/USD", flags.append, interval_ms=3_600_000, config=cv)
    try:
        clients = {v: VenueClient(VenueConfig(exchange_id="binance", venue_name=v, symbols=("ETH/USD",),
                                              base_url=ex.base_url, base_delay_s=0.1))
                   for v, ex in exchanges.items()}
        rounds: list[dict[str, VenueFlagV1]] = []
        for i in range(10):
            if i == 4:
                exchanges["kraken"].faults.apply(stale=True)
            stepped = {v: ex.step("ETHUSD") for v, ex in exchanges.items()}
            assert stepped["kraken"] == (0 if i >= 4 else 1) and stepped["coinbase"] == 1
            tickers = [c.poll_ticker("ETH/USD", monitor.on_ticker) for c in clients.values()]
            end = max(t.event_time for t in tickers) + 1  # the logical clock: the freshest venue's close
            rounds.append({f.exchange: f for f in monitor.close_interval(end, int(time.time() * 1000))})
    finally:
        for ex in exchanges.values():
            ex.stop()
    assert len(flags) == 30
    assert not any(r[v].stale for r in rounds for v in ("coinbase", "bittrex"))
    assert [r["kraken"].stale for r in rounds] == [False] * 5 + [True] * 5  # older than 2 h from round 5 on
    assert all(r["kraken"].price == rounds[3]["kraken"].price for r in rounds[4:])  # frozen price
