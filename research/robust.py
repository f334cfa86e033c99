"""Robustness: Monte Carlo of trades and bars with confidence bands, and stress windows on real crashes.

* :func:`bootstrap_trades`: resample the closed trades' returns with replacement (i.i.d.), compound
  each path; the spread of final returns says how much of the result is the order of a few trades.
* :func:`block_bootstrap`: resample the per-bar returns in contiguous blocks (moving-block bootstrap,
  keeps volatility clustering within a block) and give percentile bands of the equity path.
* :func:`stress_windows`: run a strategy over real crash windows of Binance BTC/USDT 1h
  (``../shared/data/market/ohlcv_1h/ingiorn``): 2018-01/02, 2018-11 and the 2020-03-12 crash, each with
  its warm-up before, through the vectorised engine (the node's trades), against buy-and-hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from research.vector import bar_columns, run_vector
from trader.domain import Instrument
from trader.execution.paper import PaperConfig
from trader.strategies.signal import SignalStrategy

#: name -> (first, end exclusive), UTC
STRESS: dict[str, tuple[str, str]] = {
    "2018-01/02 crash": ("2018-01-01", "2018-03-01"),
    "2018-11 capitulation": ("2018-11-01", "2018-12-01"),
    "2020-03-12 covid crash": ("2020-03-01", "2020-04-01"),
}


@dataclass(frozen=True)
class Bands:
    """Percentiles (rows ``percentiles``) of the simulated paths (columns: steps), and the final returns."""

    percentiles: tuple[float, ...]
    bands: np.ndarray
    finals: np.ndarray


def bootstrap_trades(trade_returns: np.ndarray, *, paths: int = 2000, seed: int = 7,
                     percentiles: tuple[float, ...] = (5, 50, 95)) -> Bands:
    """Compounded growth paths of i.i.d. resampled trade returns (each a fraction of equity)."""
    r = np.asarray(trade_returns, dtype=float)
    if len(r) == 0:
        raise ValueError("bootstrap_trades: no trades to resample")
    draws = np.random.default_rng(seed).integers(0, len(r), (paths, len(r)))
    growth = np.cumprod(1 + r[draws], axis=1)
    return Bands(percentiles, np.percentile(growth, percentiles, axis=0), growth[:, -1] - 1)


def block_bootstrap(bar_returns: np.ndarray, *, block: int = 48, paths: int = 500, seed: int = 7,
                    percentiles: tuple[float, ...] = (5, 50, 95)) -> Bands:
    """Equity growth bands from moving-block resampling of per-bar returns (blocks of ``block`` bars)."""
    r = np.asarray(bar_returns, dtype=float)
    n = len(r)
    if n < 2 * block:
        raise ValueError(f"block_bootstrap: {n} returns are fewer than two blocks of {block}")
    rng = np.random.default_rng(seed)
    k = -(-n // block)
    starts = rng.integers(0, n - block + 1, (paths, k))
    idx = (starts[:, :, None] + np.arange(block)).reshape(paths, -1)[:, :n]
    growth = np.cumprod(1 + r[idx], axis=1)
    return Bands(percentiles, np.percentile(growth, percentiles, axis=0), growth[:, -1] - 1)


def binance_btc_1h(shared: Path) -> pd.DataFrame:
    """Binance BTC/USDT 1h candles (real, de-duplicated by the parser) as a bar frame."""
    from ingest.localexchange.data import parse_cdd_csv

    candles = parse_cdd_csv(shared / "market" / "ohlcv_1h" / "ingiorn" / "Binance_BTCUSDT_1h.csv.gz")
    return pd.DataFrame({
        "open_time": pd.to_datetime([c.open_time for c in candles], unit="ms", utc=True),
        "open": [c.open for c in candles], "high": [c.high for c in candles], "low": [c.low for c in candles],
        "close": [c.close for c in candles], "volume": [c.volume for c in candles],
    })


def stress_windows(strategy: SignalStrategy, bars: pd.DataFrame, *, paper: PaperConfig, cash: float = 10_000.0,
                   windows: dict[str, tuple[str, str]] | None = None) -> pd.DataFrame:
    """Per window: the strategy's return and max drawdown, buy-and-hold's, and the trades (engine = node rules)."""
    rows = []
    inst = next(iter(strategy.instruments.values()), Instrument("binance", "BTC/USDT", 2, 6))
    for name, (first, end) in (windows or STRESS).items():
        times = pd.DatetimeIndex(pd.to_datetime(bars.open_time, utc=True))
        start, stop = (int(times.searchsorted(pd.Timestamp(x, tz="UTC"))) for x in (first, end))
        warm = max(0, start - strategy.history_bars)
        frame = bars.iloc[warm:stop].reset_index(drop=True)
        arrays = bar_columns(frame)
        res = run_vector(strategy, arrays, cash=cash, paper=paper, instrument=inst)
        eq = res.equity[start - warm:]
        trades = res.trades[res.trades.entry_bar >= start - warm]
        closes = arrays[3][start - warm:]
        path = np.concatenate([[cash], eq])
        rows.append({"window": name, "first": first, "end": end, "bars": len(eq),
                     "strategy_return": float(eq[-1] / eq[0] - 1) if len(eq) else float("nan"),
                     "strategy_max_drawdown": float(np.max(1 - path / np.maximum.accumulate(path))),
                     "buy_and_hold_return": float(closes[-1] / closes[0] - 1),
                     "buy_and_hold_max_drawdown": float(np.max(1 - closes / np.maximum.accumulate(closes))),
                     "trades": len(trades)})
    return pd.DataFrame(rows)
