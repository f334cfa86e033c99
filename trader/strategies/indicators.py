"""Point-in-time indicators over a window ending at bar ``t`` (inclusive), written once for two engines.

Every function reads only ``x[t - n + 1 .. t]`` (or ``t - n .. t`` where a previous bar is needed) and
uses plain loops of ``+ - * /``, ``abs``, ``max``, ``min`` and ``math.sqrt``. The trading node's
strategies call them on arrays of the bars of :meth:`StrategyContext.history`; the vectorised research
engine (:mod:`research.vector`) calls *the same compiled functions* (numba) for every bar.
IEEE arithmetic in the same order gives the same floats, so both engines take the same decisions.

Conventions (documented because every library differs):

* Averages are simple (not Wilder's recursive smoothing): a value depends only on its window, so a
  decision at ``t`` never depends on how far back the data starts (no warm-up drift, no leakage).
* ATR = mean true range over ``n`` bars; true range uses the previous close.
* ADX = mean over ``n`` bars of DX, each DX from ``n``-bar sums of +DM, -DM and true range (so it
  needs ``2n`` bars).
* RSI = Cutler's RSI: ``100 * gains / (gains + losses)`` over ``n`` close-to-close changes (50 when flat).
* Bollinger: mean and population standard deviation of ``n`` closes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from numba import njit

Series = Sequence[float]


@njit(cache=True)
def mean(x: Series, t: int, n: int) -> float:
    """Mean of ``x[t-n+1 .. t]``."""
    s = 0.0
    for i in range(t - n + 1, t + 1):
        s += x[i]
    return s / n


@njit(cache=True)
def highest(x: Series, t: int, n: int) -> float:
    """Max of ``x[t-n+1 .. t]``."""
    m = x[t - n + 1]
    for i in range(t - n + 2, t + 1):
        if x[i] > m:
            m = x[i]
    return m


@njit(cache=True)
def lowest(x: Series, t: int, n: int) -> float:
    """Min of ``x[t-n+1 .. t]``."""
    m = x[t - n + 1]
    for i in range(t - n + 2, t + 1):
        if x[i] < m:
            m = x[i]
    return m


@njit(cache=True)
def true_range(h: Series, lo: Series, c: Series, i: int) -> float:
    """True range of bar ``i`` (needs bar ``i-1``)."""
    return max(h[i] - lo[i], abs(h[i] - c[i - 1]), abs(lo[i] - c[i - 1]))


@njit(cache=True)
def atr(h: Series, lo: Series, c: Series, t: int, n: int) -> float:
    """Mean true range of bars ``t-n+1 .. t`` (needs ``n + 1`` bars)."""
    s = 0.0
    for i in range(t - n + 1, t + 1):
        s += true_range(h, lo, c, i)
    return s / n


@njit(cache=True)
def dx(h: Series, lo: Series, c: Series, t: int, n: int) -> float:
    """Directional index at ``t`` from ``n``-bar sums (needs ``n + 1`` bars); 0 without range."""
    plus = 0.0
    minus = 0.0
    tr = 0.0
    for i in range(t - n + 1, t + 1):
        up = h[i] - h[i - 1]
        down = lo[i - 1] - lo[i]
        if up > down and up > 0.0:
            plus += up
        if down > up and down > 0.0:
            minus += down
        tr += true_range(h, lo, c, i)
    if tr <= 0.0:
        return 0.0
    pdi = 100.0 * plus / tr
    mdi = 100.0 * minus / tr
    if pdi + mdi <= 0.0:
        return 0.0
    return 100.0 * abs(pdi - mdi) / (pdi + mdi)


@njit(cache=True)
def adx(h: Series, lo: Series, c: Series, t: int, n: int) -> float:
    """Mean DX over bars ``t-n+1 .. t`` (needs ``2n`` bars)."""
    s = 0.0
    for i in range(t - n + 1, t + 1):
        s += dx(h, lo, c, i, n)
    return s / n


@njit(cache=True)
def rsi(c: Series, t: int, n: int) -> float:
    """Cutler's RSI over the ``n`` changes ending at ``t`` (needs ``n + 1`` bars)."""
    gains = 0.0
    losses = 0.0
    for i in range(t - n + 1, t + 1):
        d = c[i] - c[i - 1]
        if d > 0.0:
            gains += d
        else:
            losses -= d
    if gains + losses <= 0.0:
        return 50.0
    return 100.0 * gains / (gains + losses)


@njit(cache=True)
def stdev(x: Series, t: int, n: int) -> float:
    """Population standard deviation of ``x[t-n+1 .. t]``."""
    m = mean(x, t, n)
    s = 0.0
    for i in range(t - n + 1, t + 1):
        d = x[i] - m
        s += d * d
    return math.sqrt(s / n)
