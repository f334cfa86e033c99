"""The local exchange replaying real Binance BTC/USDT and ETH/USDT hourly candles (CryptoDataDownload
exports in the shared data), one account, and a journal per test: the venue of the live-path tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.localexchange.server import LocalExchange, LocalExchangeConfig
from trader.execution.ccxt_client import CcxtExecutionClient, CcxtVenueConfig
from trader.orders import OrderJournal
from trader.store import TradeStore

CANDLES = {"BTC/USDT": "market/ohlcv_1h/ingiorn/Binance_BTCUSDT_1h.csv.gz",
           "ETH/USDT": "market/ohlcv_1h/ingiorn/Binance_ETHUSDT_1h.csv.gz"}
SYMBOLS = ["BTC/USDT", "ETH/USDT"]


def venue_config(shared_data: Path, **kw: object) -> LocalExchangeConfig:
    base: dict[str, object] = {"candle_files": {s: shared_data / p for s, p in CANDLES.items()},
                               "balances": {"USDT": "100000", "BTC": "0", "ETH": "0"},
                               "start_paused": True, "candle_start_index": 2000}
    return LocalExchangeConfig(**(base | kw))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def venue(shared_data: Path) -> Iterator[LocalExchange]:
    """A paused local exchange (step candles by hand with ``venue.step``), shared by a module's tests."""
    ex = LocalExchange(venue_config(shared_data))
    ex.start()
    yield ex
    ex.stop()


@pytest.fixture
def keys(venue: LocalExchange, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    """A fresh venue account for this test, its keys in the environment; returns the account's name."""
    venue.faults.reset()
    key = f"k-{abs(hash(request.node.nodeid)):x}"
    account = venue.add_account(key, f"s-{key}")
    monkeypatch.setenv("CRYPTOLAKE__TRADER__API_KEY", key)
    monkeypatch.setenv("CRYPTOLAKE__TRADER__API_SECRET", f"s-{key}")
    return account


def make_client(venue: LocalExchange, url: str, account: str = "acct", **cfg: object) -> CcxtExecutionClient:
    """A client on ``venue``; REST polling only unless ``user_stream=True`` (the tests of the stream close it)."""
    cfg.setdefault("user_stream", False)
    config = CcxtVenueConfig(base_url=venue.base_url, **cfg)  # type: ignore[arg-type]
    return CcxtExecutionClient(config, SYMBOLS, OrderJournal(TradeStore(url), account), sleep=lambda s: None)
