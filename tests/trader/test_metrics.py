"""Metrics against values computed by hand on a small, known equity curve."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from trader.metrics import compute_metrics, max_drawdown, periods_per_year

INITIAL = 100.0
# equity after each of 4 one-day bars: returns +10 %, -10 %, -10 %, +25 %
EQUITY = [110.0, 99.0, 89.1, 111.375]


def _metrics() -> dict:
    equity = pd.DataFrame({"equity": EQUITY, "open_positions": [1, 1, 0, 0]})
    fills = pd.DataFrame({"price": [100.0, 110.0], "qty": [1.0, 1.0], "fee": [0.1, 0.11]})
    trades = pd.DataFrame({"pnl": [5.0, -2.0, 3.0]})
    return compute_metrics(equity, fills, trades, initial_cash=INITIAL, timeframe="1d")


def test_sharpe_sortino_drawdown_calmar_by_hand() -> None:
    m = _metrics()
    r = [0.10, -0.10, -0.10, 0.25]
    mean = sum(r) / 4  # 0.0375
    sd = math.sqrt(sum((x - mean) ** 2 for x in r) / 3)
    assert m["sharpe"] == pytest.approx(mean / sd * math.sqrt(365))
    downside = math.sqrt((0.01 + 0.01) / 4)
    assert m["sortino"] == pytest.approx(mean / downside * math.sqrt(365))
    assert m["max_drawdown"] == pytest.approx(1 - 89.1 / 110.0)  # 19 %
    cagr = (111.375 / 100) ** (365 / 4) - 1
    assert m["cagr"] == pytest.approx(cagr)
    assert m["calmar"] == pytest.approx(cagr / 0.19)


def test_counts_rates_and_costs() -> None:
    m = _metrics()
    assert m["pnl"] == pytest.approx(11.375)
    assert m["total_return"] == pytest.approx(0.11375)
    assert m["n_trades"] == 3 and m["win_rate"] == pytest.approx(2 / 3)
    assert m["exposure"] == 0.5
    assert m["fees_paid"] == pytest.approx(0.21)
    assert m["turnover"] == pytest.approx(210.0 / (sum(EQUITY) / 4))


def test_periods_per_year_and_drawdown_from_initial_peak() -> None:
    assert periods_per_year("30m") == 17_520
    assert periods_per_year("1h") == 8_760
    # a curve that only falls: the peak is the initial cash
    assert max_drawdown(pd.Series([90.0, 80.0]), 100.0) == pytest.approx(0.2)


def test_undefined_ratios_are_nan_not_zero() -> None:
    equity = pd.DataFrame({"equity": [100.0, 100.0], "open_positions": [0, 0]})
    empty = pd.DataFrame({"price": [], "qty": [], "fee": []})
    m = compute_metrics(equity, empty, pd.DataFrame({"pnl": []}), initial_cash=100.0, timeframe="1h")
    assert math.isnan(m["sharpe"]) and math.isnan(m["win_rate"]) and math.isnan(m["calmar"])
    assert m["max_drawdown"] == 0.0 and m["n_trades"] == 0
