"""Robustness on real data: stress windows on Binance BTC/USDT 1h crashes; bootstraps checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from cryptolake.settings import DEFAULT_SHARED_DATA
from research.robust import binance_btc_1h, block_bootstrap, bootstrap_trades, stress_windows
from trader.domain import Instrument
from trader.execution.paper import PaperConfig
from trader.strategies.swing import SwingConfig, SwingStrategy


def test_stress_windows_on_real_crashes() -> None:
    bars = binance_btc_1h(DEFAULT_SHARED_DATA)
    strat = SwingStrategy(SwingConfig(fast=10, slow=50), [Instrument("binance", "BTC/USDT", 2, 6)])
    out = stress_windows(strat, bars, paper=PaperConfig()).set_index("window")
    assert list(out.index) == ["2018-01/02 crash", "2018-11 capitulation", "2020-03-12 covid crash"]
    covid = out.loc["2020-03-12 covid crash"]
    assert covid.bars == 31 * 24  # every hour of March 2020 is in the file
    assert covid.buy_and_hold_max_drawdown > 0.45  # 2020-03-12/13: BTC fell by about half from the month's high
    assert out.loc["2018-11 capitulation"].buy_and_hold_return < -0.3
    assert (out.strategy_max_drawdown >= 0).all() and (out.trades >= 0).all()


def test_bootstraps() -> None:
    r = np.array([0.02, -0.01, 0.03, -0.02, 0.01])  # SYNTHETIC trade returns
    b = bootstrap_trades(r, paths=4000, seed=1)
    assert b.bands.shape == (3, 5) and (b.bands[0] <= b.bands[1]).all() and (b.bands[1] <= b.bands[2]).all()
    assert np.mean(np.log1p(b.finals)) == pytest.approx(np.log1p(r).sum(), abs=0.01)  # E[log growth] unchanged
    bars = np.random.default_rng(0).normal(0.0002, 0.01, 2000)  # SYNTHETIC
    bb = block_bootstrap(bars, block=50, paths=300, seed=2)
    assert bb.bands.shape == (3, 2000)
    assert bb.bands[0, -1] < np.prod(1 + bars) < bb.bands[2, -1]
    with pytest.raises(ValueError, match="fewer than two blocks"):
        block_bootstrap(bars[:60], block=50)
