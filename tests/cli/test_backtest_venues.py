"""`cryptolake backtest --venue`: one portfolio of sleeves across two venues of the lake.

The lake holds REAL hourly candles of Binance BTC/USDT and Kraken ETH/USD (CryptoDataDownload exports in the
shared data) written as silver.bars with delta-rs (no JVM).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from cryptolake.settings import get_settings
from cryptolake.tables import SILVER_BARS
from tests.cli.test_backtest import _backtest, _metric, _silver
from tests.conftest import settings_in
from tests.models.lake_fixture import write_table
from tests.trader.test_sleeves import ALLOCATION, MEMBERS, START, _venue_bars
from trader.backtest import run_backtest
from trader.config import TraderConfig


@pytest.fixture
def venues_lake(tmp_path, monkeypatch, shared_data: Path):
    hourly = shared_data / "market" / "ohlcv_1h"
    bars = pd.concat([_venue_bars(hourly / "ingiorn" / "Binance_BTCUSDT_1h.csv.gz", "binance", "BTC/USDT"),
                      _venue_bars(hourly / "kmerisalu" / "Kraken_ETHUSD_1h.csv.gz", "kraken", "ETH/USD")],
                     ignore_index=True)
    bars["close_time"] = bars.open_time + pd.Timedelta(hours=1)
    settings = settings_in(tmp_path)
    write_table(SILVER_BARS, _silver([bars]), settings)
    monkeypatch.setenv("CRYPTOLAKE__PATHS__LAKE_ROOT", settings.paths.lake())
    monkeypatch.setenv("CRYPTOLAKE__PATHS__ARTIFACTS_DIR", str(settings.paths.artifacts_dir))
    monkeypatch.setenv("CRYPTOLAKE__TRADER__STORE_URL", f"sqlite:///{tmp_path}/trader.db")
    get_settings.cache_clear()
    yield bars
    get_settings.cache_clear()


def test_sleeves_across_two_venues_of_the_lake_trade_as_the_node_does(venues_lake) -> None:
    code, out = _backtest("--strategy", "sleeves", "--exchange", "binance", "--symbols", "BTC/USDT",
                          "--venue", "kraken=ETH/USD", "--timeframe", "1h", "--start", START.isoformat(),
                          "-p", f"members={json.dumps(MEMBERS)}",
                          "-p", f"allocation={ALLOCATION.model_dump_json()}", "--no-alt")
    assert code == 0, out
    after = venues_lake[venues_lake.open_time >= pd.Timestamp(START)]
    assert _metric(out, "bars") == f"{len(after):,}"
    config = TraderConfig(exchange="binance", symbols=("BTC/USDT",), venues={"kraken": ("ETH/USD",)}, timeframe="1h",
                          price_decimals=8, strategies=({"kind": "sleeves", "members": MEMBERS,
                                                         "allocation": ALLOCATION.model_dump()},))
    direct = run_backtest(venues_lake, None, config, run_id="direct", persist_run=False, start_time=START)
    assert int(_metric(out, "n_fills")) == len(direct.fills) > 50
    page = Path(out.split("sleeves:")[1].strip().split()[0]).read_text()
    assert all(label in page for label in ("binance:BTC/USDT swing", "kraken:ETH/USD brk", "PnL per sleeve"))


def test_a_venue_without_symbols_is_refused() -> None:
    code, out = _backtest("--strategy", "sleeves", "--venue", "kraken=")
    assert code != 0 and "--venue 'kraken=' must be exchange=SYMBOL" in out
