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

Tail risk of the per-bar returns, as positive losses at ``1 - alpha`` confidence (``alpha = 0.05``):

* historical VaR = ``-quantile(r, alpha)``; historical CVaR = ``-mean(r[r <= quantile(r, alpha)])``;
* Cornish-Fisher VaR = ``-(mean + std * z_cf(alpha))`` with the quantile ``z`` of the normal adjusted
  for skewness ``S`` and excess kurtosis ``K``:
  ``z_cf = z + (z^2 - 1) S / 6 + (z^3 - 3z) K / 24 - (2z^3 - 5z) S^2 / 36``;
  Cornish-Fisher CVaR = ``-(mean + std * mean of z_cf(u) for u in (0, alpha))`` (the expected
  shortfall of the same expansion, integrated numerically over 1,000 levels).

Deflated Sharpe ratio (Bailey and Lopez de Prado, 2014), :func:`deflated_sharpe`: the probability that
the true per-bar Sharpe exceeds the largest Sharpe expected from ``n_trials`` unskilled trials with the
observed variance of trial Sharpes, given the sample's length, skewness and kurtosis.

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


def _moments(r: np.ndarray) -> tuple[float, float, float, float]:
    """Mean, sample std, skewness and excess kurtosis (population moments) of ``r``."""
    mu, sd = float(r.mean()), float(r.std(ddof=1)) if len(r) > 1 else math.nan
    m2 = float(((r - mu) ** 2).mean())
    if m2 <= 0:
        return mu, sd, 0.0, 0.0
    return mu, sd, float(((r - mu) ** 3).mean()) / m2**1.5, float(((r - mu) ** 4).mean()) / m2**2 - 3.0


def _cf_z(z: np.ndarray | float, skew: float, kurt: float) -> np.ndarray | float:
    return z + (z**2 - 1) * skew / 6 + (z**3 - 3 * z) * kurt / 24 - (2 * z**3 - 5 * z) * skew**2 / 36


def tail_risk(r: np.ndarray | pd.Series, alpha: float = 0.05) -> dict[str, float]:
    """Historical and Cornish-Fisher VaR and CVaR of returns ``r`` at ``alpha`` (see the module docstring)."""
    from scipy.stats import norm

    x = np.asarray(r, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) < 3:
        return {"var": math.nan, "cvar": math.nan, "cf_var": math.nan, "cf_cvar": math.nan,
                "skew": math.nan, "excess_kurtosis": math.nan}
    q = float(np.quantile(x, alpha))
    mu, sd, skew, kurt = _moments(x)
    u = (np.arange(1000) + 0.5) / 1000 * alpha
    return {
        "var": -q,
        "cvar": -float(x[x <= q].mean()),
        "cf_var": -(mu + sd * float(_cf_z(float(norm.ppf(alpha)), skew, kurt))),
        "cf_cvar": -(mu + sd * float(np.mean(_cf_z(norm.ppf(u), skew, kurt)))),
        "skew": skew,
        "excess_kurtosis": kurt,
    }


def probabilistic_sharpe(sr: float, benchmark: float, n: int, skew: float, kurt: float) -> float:
    """P(true per-bar Sharpe > ``benchmark``) for an observed per-bar Sharpe ``sr`` over ``n`` returns
    (``kurt`` is excess kurtosis)."""
    from scipy.stats import norm

    denom = 1.0 - skew * sr + (kurt + 2.0) / 4.0 * sr**2  # (raw kurtosis - 1) / 4 = (excess + 2) / 4
    if n < 2 or denom <= 0 or not math.isfinite(sr):
        return math.nan
    return float(norm.cdf((sr - benchmark) * math.sqrt(n - 1) / math.sqrt(denom)))


def expected_max_sharpe(n_trials: int, trial_sharpe_var: float) -> float:
    """The largest per-bar Sharpe expected among ``n_trials`` unskilled trials (false strategy theorem)."""
    from scipy.stats import norm

    if n_trials < 2 or trial_sharpe_var <= 0:
        return 0.0
    g = 0.5772156649015329
    return math.sqrt(trial_sharpe_var) * float((1 - g) * norm.ppf(1 - 1 / n_trials)
                                          + g * norm.ppf(1 - 1 / (n_trials * math.e)))


def deflated_sharpe(r: np.ndarray | pd.Series, n_trials: int, trial_sharpe_var: float) -> dict[str, float]:
    """Deflated Sharpe ratio of returns ``r`` chosen among ``n_trials`` whose per-bar Sharpes have variance
    ``trial_sharpe_var``: ``{"sharpe_per_bar", "sr0", "psr", "dsr"}``."""
    x = np.asarray(r, dtype=float)
    x = x[np.isfinite(x)]
    mu, sd, skew, kurt = _moments(x)
    sr = mu / sd if sd and math.isfinite(sd) else math.nan
    sr0 = expected_max_sharpe(n_trials, trial_sharpe_var)
    return {"sharpe_per_bar": sr, "sr0": sr0, "psr": probabilistic_sharpe(sr, 0.0, len(x), skew, kurt),
            "dsr": probabilistic_sharpe(sr, sr0, len(x), skew, kurt)}


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
    tails = tail_risk(r.to_numpy()) if n else tail_risk(np.array([]))
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
        "var_95": tails["var"],
        "cvar_95": tails["cvar"],
        "cf_var_95": tails["cf_var"],
        "cf_cvar_95": tails["cf_cvar"],
        "skew": tails["skew"],
        "excess_kurtosis": tails["excess_kurtosis"],
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
