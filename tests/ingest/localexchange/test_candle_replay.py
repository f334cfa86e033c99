"""The real Binance BTCUSDT 1-minute bars as a replay market, and the SYNTHETIC drift option."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from cryptolake.errors import DataValidationError
from ingest.localexchange.data import load_candles, synthetic_drift
from ingest.localexchange.server import LocalExchange, LocalExchangeConfig

ONE_MIN = "market/ohlcv_1m/nautilus_trader/btc-perp-20211231-20220201_1m.csv.gz"


@pytest.fixture(scope="module")
def bars(shared_data: Path):
    return load_candles(shared_data / ONE_MIN, "BTC/USDT")


def test_plain_1m_file_loads_every_row(bars) -> None:
    assert bars.interval_ms == 60_000 and len(bars.candles) == 45_031  # README: 45,031 rows, no gaps
    first = bars.candles[0]
    assert first.open_time == int(datetime(2021, 12, 31, 23, 1, tzinfo=UTC).timestamp() * 1000)
    assert (first.open, first.high, first.low, first.close) == (46319.0, 46385.0, 46319.0, 46377.0)


def test_bad_row_names_the_line(tmp_path: Path) -> None:
    f = tmp_path / "x.csv"
    f.write_text("timestamp,open,high,low,close,volume\n2022-01-01 00:00:00,1,2,0.5,1.5,10\n"
                 "2022-01-01 00:01:00,a,2,1,1,1\n")
    with pytest.raises(DataValidationError, match=r"x\.csv:3"):
        load_candles(f, "BTC/USDT")


def test_drift_scales_volatility_and_volume_after_the_point_only(bars) -> None:
    at = bars.candles[30_000].open_time
    drifted = synthetic_drift(bars, at, 3.0)
    assert drifted.candles[:30_000] == bars.candles[:30_000]  # real before the point
    assert "SYNTHETIC" in drifted.source

    def vol(cs, lo, hi):
        c = np.array([x.close for x in cs.candles[lo:hi]])
        return float(np.std(np.diff(np.log(c))))

    ratio = vol(drifted, 30_001, 45_031) / vol(bars, 30_001, 45_031)
    assert math.isclose(ratio, 3.0, rel_tol=1e-6)
    assert math.isclose(drifted.candles[40_000].volume, 3.0 * bars.candles[40_000].volume)
    assert all(c.low <= min(c.open, c.close) <= max(c.open, c.close) <= c.high for c in drifted.candles[30_000:])


def test_exchange_labels_drifted_klines_synthetic(shared_data: Path) -> None:
    at = datetime(2022, 1, 1, 8, 0, tzinfo=UTC)
    ex = LocalExchange(LocalExchangeConfig(candle_files={"BTC/USDT": shared_data / ONE_MIN}, start_paused=True,
                                           candle_start_index=600, drift_at_ms=int(at.timestamp() * 1000),
                                           drift_scale=2.0))
    status = ex.replay_status()
    assert status["synthetic_drift"]["scale"] == 2.0 and status["candles"]["BTCUSDT"]["cursor"] == 600
    rows = ex._klines(None, {"symbol": "BTCUSDT", "interval": "1m", "limit": "1000"}, "")  # type: ignore[arg-type]
    labels = {r[11] for r in rows if r[0] >= at.timestamp() * 1000}
    assert labels == {"SYNTHETIC"} and {r[11] for r in rows if r[0] < at.timestamp() * 1000} == {"0"}
