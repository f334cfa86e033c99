"""The vectorised research engine: the trading node's long/flat trades at compiled speed, for sweeps.

:func:`simulate` replays entry/exit signals over one instrument's bars with exactly the node's rules
(:mod:`trader.strategies.signal` and the paper venue, :mod:`trader.execution.paper`): decisions at a
bar's close, market orders filled at the next open with slippage and the taker fee, sizing from the
close and the free cash less the reserve, quantities rounded down to the lot, prices to the tick,
fees to 8 decimals; the stop-loss and take-profit rest from the entry bar on (gap fills at the open,
stop first); the trailing level is ``max(close - distance)`` since entry. :func:`signals` evaluates a
signal strategy's compiled signal function at every bar, so the engine and the node take the same
decisions; ``tests/research/test_vector.py`` proves equal trades on real data per library strategy.

Scope (what the node does that the engine does not): one instrument per account (the node shares one
cash balance across instruments), no risk engine (run the node with its limits off to compare), no
venue latency. ``sizing="all_cash"`` is vectorbt's ``size=inf`` (all cash at the fill price, fees
included, no rounding), used only to compare with vectorbt.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numba import njit, prange

from trader.config import TraderConfig
from trader.domain import Instrument
from trader.execution.paper import PaperConfig
from trader.strategies.registry import build_strategy
from trader.strategies.signal import SignalStrategy
from trader.strategies.vote import VoteStrategy

EXIT_SIGNAL, EXIT_STOP, EXIT_TAKE_PROFIT = 0, 1, 2
TRADE_COLUMNS = ["entry_bar", "exit_bar", "entry_price", "exit_price", "qty", "fees", "pnl", "reason"]


@njit(cache=False)  # a dispatcher argument: numba cannot cache it (a new index entry per process,
# then "ReferenceError: underlying object has vanished"); the strategies' own kernels stay cached
def _signal_loop(fn: Any, o: Any, h: Any, lo: Any, c: Any, v: Any, mod: Any, p: Any, lookback: int) -> Any:
    n = len(c)
    ent = np.zeros(n, np.bool_)
    ext = np.zeros(n, np.bool_)
    dist = np.full(n, np.nan)
    for t in range(lookback - 1, n):
        e, x, d = fn(o, h, lo, c, v, mod, t, p)
        ent[t] = e
        ext[t] = x
        dist[t] = d
    return ent, ext, dist


def bar_columns(bars: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """open, high, low, close, volume and close minute-of-day arrays of one instrument's bar frame.

    ``bars`` has ``open_time`` and OHLCV columns (the node's valid bars, in order); the bar length is
    taken from the first two bars' spacing unless ``close_time`` is a column."""
    ot = pd.to_datetime(bars["open_time"], utc=True)
    if "close_time" in bars:
        ct = pd.to_datetime(bars["close_time"], utc=True)
    else:
        ct = ot + (ot.diff().dropna().min() if len(ot) > 1 else pd.Timedelta(minutes=30))
    mod = (ct.dt.hour * 60 + ct.dt.minute).to_numpy(dtype=float)
    cols = [bars[k].to_numpy(dtype=float) for k in ("open", "high", "low", "close", "volume")]
    return (*cols, mod)


def signals(strategy: SignalStrategy, arrays: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Entry, exit and trail-distance arrays of a signal strategy over whole bar arrays."""
    lookback = strategy.history_bars
    if isinstance(strategy, VoteStrategy):
        parts = []
        for m in strategy.members:
            assert isinstance(m, SignalStrategy)
            e, x, _ = signals(m, arrays)
            parts.append((e, x))
        ent, ext = strategy.combine(parts)
        ent[: lookback - 1] = False
        ext[: lookback - 1] = False
        return ent, ext, np.full(len(ent), np.nan)
    return _signal_loop(type(strategy).signal, *arrays, strategy._params, lookback)  # type: ignore[no-any-return,call-arg,arg-type]


@njit(cache=True)
def _two_product(a: float, b: float) -> tuple[float, float]:
    """``a * b = p + e`` exactly (Dekker's product, no FMA needed)."""
    p = a * b
    c = 134217729.0 * a
    ah = c - (c - a)
    al = a - ah
    c = 134217729.0 * b
    bh = c - (c - b)
    bl = b - bh
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


@njit(cache=True)
def round_decimals(x: float, decimals: int) -> float:
    """Python's ``round(x, decimals)`` (half-even on the exact binary value) for |x| * 10**decimals < 2**52.

    numba's own ``round`` multiplies, rounds and divides, which differs from CPython's correctly rounded
    result about once in a few hundred fills; the node rounds with CPython's, so the engine must too."""
    if decimals < 0:
        return x
    scale = 10.0**decimals
    y, e = _two_product(abs(x), scale)
    z = float(math.floor(y))
    g = (y - z) - 0.5 + e  # sign of the exact fraction above the half
    if g > 0.0 or (g == 0.0 and z % 2.0 == 1.0):
        z += 1.0
    return math.copysign(z / scale, x)


_round = round_decimals


@njit(cache=True)
def _floor_lot(q: float, decimals: int) -> float:
    if decimals < 0:
        return q
    scale = 10.0**decimals
    return math.floor(q * scale + 1e-9) / scale


@njit(cache=True)
def simulate(o: Any, h: Any, lo: Any, c: Any, ent: Any, ext: Any, dist: Any, cash0: float, fraction: float,
             reserve: float, taker_bps: float, maker_bps: float, slip_bps: float, stop_pct: float, tp_pct: float,
             price_dec: int, qty_dec: int, all_cash: bool) -> Any:
    """Trades (rows of :data:`TRADE_COLUMNS`) and the equity at each close. NaN ``stop_pct``/``tp_pct`` = none;
    ``price_dec``/``qty_dec`` < 0 = no rounding; fees rounded to 8 decimals unless ``all_cash``."""
    n = len(c)
    slip = slip_bps / 10_000.0
    fee_dec = -1 if all_cash else 8
    trades = np.empty((n // 2 + 1, 8))
    equity = np.empty(n)
    k = 0
    cash = cash0
    qty = 0.0
    pending = 0  # 1 entry, -1 exit at the next open
    next_qty = 0.0
    entry_bar = 0
    entry_px = 0.0
    fees = 0.0
    stop = math.nan
    tp = math.nan
    trail = -math.inf
    for t in range(n):
        closed = -1
        exit_px = 0.0
        if pending == 1:
            px = _round(o[t] * (1 + slip), price_dec)
            qty = cash / (px * (1 + taker_bps / 10_000.0)) if all_cash else next_qty
            fee = _round(px * qty * taker_bps / 10_000.0, fee_dec)
            cash -= qty * px + fee
            entry_bar, entry_px, fees, trail = t, px, fee, -math.inf
            stop = _round(px * (1 - stop_pct), price_dec) if not math.isnan(stop_pct) else math.nan
            tp = _round(px * (1 + tp_pct), price_dec) if not math.isnan(tp_pct) else math.nan
        elif pending == -1:
            exit_px = _round(o[t] * (1 - slip), price_dec)
            closed = EXIT_SIGNAL
        pending = 0
        if closed < 0 and qty > 0 and not math.isnan(stop):
            if o[t] <= stop:
                exit_px, closed = _round(o[t] * (1 - slip), price_dec), EXIT_STOP
            elif lo[t] <= stop:
                exit_px, closed = _round(stop * (1 - slip), price_dec), EXIT_STOP
        if closed < 0 and qty > 0 and not math.isnan(tp):
            if o[t] >= tp:
                exit_px, closed = _round(o[t], price_dec), EXIT_TAKE_PROFIT
            elif h[t] >= tp:
                exit_px, closed = tp, EXIT_TAKE_PROFIT
        if closed >= 0:
            bps = maker_bps if closed == EXIT_TAKE_PROFIT else taker_bps
            fee = _round(exit_px * qty * bps / 10_000.0, fee_dec)
            cash += qty * exit_px - fee
            fees += fee
            trades[k, 0], trades[k, 1], trades[k, 2], trades[k, 3] = entry_bar, t, entry_px, exit_px
            trades[k, 4], trades[k, 5] = qty, fees
            trades[k, 6], trades[k, 7] = qty * (exit_px - entry_px) - fees, closed
            k += 1
            qty, stop, tp = 0.0, math.nan, math.nan
        equity[t] = cash + qty * c[t]
        if qty == 0.0:
            if ent[t]:
                if all_cash:
                    pending = 1
                else:
                    budget = min(fraction * cash, cash * (1.0 - reserve))
                    if budget > 0:
                        next_qty = max(_floor_lot(budget / c[t], qty_dec), 0.0)
                        if next_qty > 0:
                            pending = 1
        else:
            if not math.isnan(dist[t]):
                trail = max(trail, c[t] - dist[t])
            if ext[t] or c[t] < trail:
                pending = -1
    return trades[:k], equity


@dataclass(frozen=True)
class VectorResult:
    """Trades (``TRADE_COLUMNS``, bar indices) and equity at each close of one run."""

    trades: pd.DataFrame
    equity: np.ndarray

    @property
    def final_equity(self) -> float:
        return float(self.equity[-1]) if len(self.equity) else math.nan


def run_vector(strategy: SignalStrategy, arrays: tuple[np.ndarray, ...], *, cash: float, paper: PaperConfig,
               instrument: Instrument, all_cash: bool = False) -> VectorResult:
    """One strategy over one instrument's bar arrays (:func:`bar_columns`) with the node's rules."""
    ent, ext, dist = signals(strategy, arrays)
    o, h, lo, c = arrays[:4]
    cfg = strategy.cfg
    nan = math.nan
    trades, equity = simulate(
        o, h, lo, c, ent, ext, dist, cash, strategy.fraction, cfg.cash_reserve, paper.taker_fee_bps,
        paper.maker_fee_bps, paper.slippage_bps, cfg.stop_loss_pct or nan, cfg.take_profit_pct or nan,
        -1 if all_cash else instrument.price_decimals, -1 if all_cash else instrument.qty_decimals, all_cash)
    frame = pd.DataFrame(trades, columns=TRADE_COLUMNS)
    for col in ("entry_bar", "exit_bar", "reason"):
        frame[col] = frame[col].astype(int)
    return VectorResult(frame, equity)


def run_config(config: TraderConfig, bars: pd.DataFrame, *, all_cash: bool = False) -> VectorResult:
    """The config's one signal strategy over its one instrument's bars (a frame of valid bars)."""
    if len(config.strategies) != 1 or len(config.instruments) != 1:
        raise ValueError("the vectorised engine runs one strategy over one instrument per account")
    strategy = build_strategy(config.strategies[0], config.instruments)
    if not isinstance(strategy, SignalStrategy):
        raise ValueError(f"strategy {config.strategies[0].kind!r} is not a signal strategy")
    return run_vector(strategy, bar_columns(bars), cash=config.initial_cash, paper=config.paper,
                      instrument=config.instruments[0], all_cash=all_cash)


def sweep(strategies: Sequence[SignalStrategy], arrays: tuple[np.ndarray, ...], *, cash: float,
          paper: PaperConfig, instrument: Instrument, all_cash: bool = False) -> list[VectorResult]:
    """One result per strategy (parameter set) over the same bars."""
    return [run_vector(s, arrays, cash=cash, paper=paper, instrument=instrument, all_cash=all_cash)
            for s in strategies]


@njit(cache=True)
def _sliding_extreme(x: Any, n: int, is_max: bool) -> Any:
    """``out[t]`` = max (or min) of ``x[t-n+1 .. t]`` in O(len(x)) (a monotonic queue); NaN before ``n`` bars.

    Max and min are exact in any order, so this equals :func:`trader.strategies.indicators.highest`."""
    m = len(x)
    out = np.full(m, np.nan)
    q = np.empty(m, np.int64)
    head, tail = 0, 0
    for t in range(m):
        while tail > head and ((x[q[tail - 1]] <= x[t]) if is_max else (x[q[tail - 1]] >= x[t])):
            tail -= 1
        q[tail] = t
        tail += 1
        if q[head] <= t - n:
            head += 1
        if t >= n - 1:
            out[t] = x[q[head]]
    return out


@njit(cache=True, parallel=True)
def donchian_sweep(o: Any, h: Any, lo: Any, c: Any, channels: Any, exit_channels: Any, cash0: float,
                   taker_bps: float, slip_bps: float, all_cash: bool, price_dec: int, qty_dec: int) -> Any:
    """Final equity and closed trades of the breakout strategy (no volume filter, no stops) per parameter set.

    The same decisions as :class:`trader.strategies.breakout.BreakoutStrategy` with ``volume_mult=0``,
    ``fraction=1``: entry when the close breaks the previous ``channel`` bars' high, exit below the
    previous ``exit_channel`` bars' low. Parameter sets run in parallel (numba ``prange``)."""
    k = len(channels)
    final = np.empty(k)
    counts = np.empty(k, np.int64)
    n = len(c)
    for j in prange(k):
        hi = _sliding_extreme(h, channels[j], True)
        low = _sliding_extreme(lo, exit_channels[j], False)
        lookback = max(channels[j], exit_channels[j]) + 1
        ent = np.zeros(n, np.bool_)
        ext = np.zeros(n, np.bool_)
        for t in range(lookback - 1, n):
            ent[t] = c[t] > hi[t - 1]
            ext[t] = c[t] < low[t - 1]
        trades, equity = simulate(o, h, lo, c, ent, ext, np.full(n, np.nan), cash0, 1.0, 0.01, taker_bps,
                                  taker_bps, slip_bps, np.nan, np.nan, price_dec, qty_dec, all_cash)
        final[j] = equity[-1]
        counts[j] = len(trades)
    return final, counts
