"""Performance metrics of a run.

Conventions (documented because every shop differs):

* Returns are simple per-bar returns of the equity curve (marked at each bar's close).
* Annualisation uses the bar frequency with crypto's 24/7 calendar:
  ``periods_per_year = 365 days / timeframe`` (17,520 for 30-minute bars).
* Sharpe = ``mean(r) / std(r, ddof=1) * sqrt(periods_per_year)`` with a zero risk-free rate.
* Sortino = ``mean(r) / downside_dev * sqrt(periods_per_year)``, where
  ``downside_dev = sqrt(mean(min(r, 0)^2))`` over all bars.
* Max drawdown is the largest peak-to-trough fall of equity, as a positive fraction; the
  peak includes the initial cash.
* CAGR = ``(final / initial) ** (periods_per_year / n_bars) - 1``; Calmar = CAGR / max drawdown.
* Exposure = fraction of equity points (bar close times) with at least one open position.
* Turnover = traded notional / mean equity. Win rate = winning closed trades / closed trades.
Undefined ratios (zero variance, no drawdown, no trades) are reported as NaN, never as 0.

Per-symbol breakdown (:func:`symbol_breakdown`): ``pnl = realized + unrealized - fees`` per
symbol (average-cost accounting, unrealized at the last price), so the symbols' ``pnl`` sum to
the account's ``pnl``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from cryptolake.types import TIMEFRAME_MS
from trader.domain import Position

YEAR_MS = 365 * 24 * 3600 * 1000


def periods_per_year(timeframe: str) -> float:
    """Bars per year for ``timeframe`` on a 24/7 calendar."""
    if timeframe not in TIMEFRAME_MS:
        raise ValueError(f"unknown timeframe={timeframe!r}; expected one of {sorted(TIMEFRAME_MS)}")
    return YEAR_MS / TIMEFRAME_MS[timeframe]


def returns(equity: pd.Series, initial: float) -> pd.Series:
    """Per-bar simple returns, the first measured against the initial cash."""
    values = np.concatenate([[initial], equity.to_numpy(dtype=float)])
    return pd.Series(values[1:] / values[:-1] - 1.0, index=equity.index)


def max_drawdown(equity: pd.Series, initial: float) -> float:
    """Largest peak-to-trough fall as a positive fraction (0.25 = 25 %)."""
    values = np.concatenate([[initial], equity.to_numpy(dtype=float)])
    peaks = np.maximum.accumulate(values)
    return float(np.max(1.0 - values / peaks))


def drawdown_curve(equity: pd.Series, initial: float) -> pd.Series:
    """Drawdown at each point (non-positive fractions) for plotting."""
    values = equity.to_numpy(dtype=float)
    peaks = np.maximum.accumulate(np.concatenate([[initial], values]))[1:]
    return pd.Series(values / peaks - 1.0, index=equity.index)


def sharpe(r: pd.Series, ppy: float) -> float:
    sd = float(r.std(ddof=1)) if len(r) > 1 else math.nan
    return float(r.mean()) / sd * math.sqrt(ppy) if sd and math.isfinite(sd) else math.nan


def sortino(r: pd.Series, ppy: float) -> float:
    downside = math.sqrt(float((np.minimum(r.to_numpy(dtype=float), 0.0) ** 2).mean())) if len(r) else math.nan
    return float(r.mean()) / downside * math.sqrt(ppy) if downside and math.isfinite(downside) else math.nan


def compute_metrics(
    equity: pd.DataFrame, fills: pd.DataFrame, trades: pd.DataFrame, *, initial_cash: float, timeframe: str
) -> dict[str, Any]:
    """All metrics of a run from its equity curve (``equity``, ``open_positions`` columns), fills and trades."""
    ppy = periods_per_year(timeframe)
    n = len(equity)
    if n == 0:
        eq = pd.Series(dtype=float)
        final = initial_cash
    else:
        eq = equity["equity"].astype(float)
        final = float(eq.iloc[-1])
    r = returns(eq, initial_cash) if n else pd.Series(dtype=float)
    mdd = max_drawdown(eq, initial_cash) if n else 0.0
    total_return = final / initial_cash - 1.0
    cagr = (final / initial_cash) ** (ppy / n) - 1.0 if n and final > 0 else math.nan
    n_trades = len(trades)
    wins = int((trades["pnl"] > 0).sum()) if n_trades else 0
    traded = float((fills["price"] * fills["qty"]).sum()) if len(fills) else 0.0
    mean_equity = float(eq.mean()) if n else initial_cash
    return {
        "initial_cash": initial_cash,
        "final_equity": final,
        "pnl": final - initial_cash,
        "total_return": total_return,
        "cagr": cagr,
        "sharpe": sharpe(r, ppy),
        "sortino": sortino(r, ppy),
        "max_drawdown": mdd,
        "calmar": cagr / mdd if mdd > 0 and math.isfinite(cagr) else math.nan,
        "n_bars": n,
        "n_fills": len(fills),
        "n_trades": n_trades,
        "win_rate": wins / n_trades if n_trades else math.nan,
        "exposure": float((equity["open_positions"] > 0).mean()) if n else 0.0,
        "fees_paid": float(fills["fee"].sum()) if len(fills) else 0.0,
        "turnover": traded / mean_equity if mean_equity else math.nan,
        "periods_per_year": ppy,
    }


SYMBOL_COLUMNS = [
    "symbol",
    "n_fills",
    "n_trades",
    "win_rate",
    "fees",
    "turnover_notional",
    "realized_pnl",
    "unrealized_pnl",
    "pnl",
    "final_qty",
]


def symbol_breakdown(
    fills: pd.DataFrame,
    trades: pd.DataFrame,
    positions: dict[str, Position],
    last_prices: dict[str, float],
) -> pd.DataFrame:
    """One row per instrument: fills, closed trades, win rate, fees, traded notional and PnL parts."""
    rows = []
    for key, pos in positions.items():
        f = fills[fills["symbol"] == pos.symbol] if len(fills) else fills
        t = trades[trades["symbol"] == pos.symbol] if len(trades) else trades
        fees = float(f["fee"].sum()) if len(f) else 0.0
        unrealized = pos.qty * (last_prices.get(key, pos.avg_price) - pos.avg_price) if pos.qty else 0.0
        rows.append(
            {
                "symbol": pos.symbol,
                "n_fills": len(f),
                "n_trades": len(t),
                "win_rate": float((t["pnl"] > 0).mean()) if len(t) else math.nan,
                "fees": fees,
                "turnover_notional": float((f["price"] * f["qty"]).sum()) if len(f) else 0.0,
                "realized_pnl": pos.realized_pnl,
                "unrealized_pnl": unrealized,
                "pnl": pos.realized_pnl + unrealized - fees,
                "final_qty": pos.qty,
            }
        )
    return pd.DataFrame(rows, columns=SYMBOL_COLUMNS)
