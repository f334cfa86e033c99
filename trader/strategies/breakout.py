"""Breakout: a Donchian channel breakout confirmed by volume, out on the opposite (shorter) channel.

Rules at each bar close ``t`` (channels over the bars *before* ``t``, so the bar that breaks out is
compared with the range it broke):

* entry: ``close[t] > max(high[t-channel .. t-1])`` and
  ``volume[t] > volume_mult * mean(volume[t-volume_period .. t-1])``;
* exit: ``close[t] < min(low[t-exit_channel .. t-1])``;
* optional ATR trailing stop (``atr_mult`` > 0), as in :mod:`trader.strategies.swing`.
"""

from __future__ import annotations

import math
from typing import Any

from numba import njit
from pydantic import Field

from trader.strategies.indicators import atr, highest, lowest, mean
from trader.strategies.registry import register_strategy
from trader.strategies.signal import SignalConfig, SignalStrategy


class BreakoutConfig(SignalConfig):
    """Parameters of :class:`BreakoutStrategy` (periods in bars)."""

    kind: str = "breakout"
    channel: int = Field(default=48, ge=2, description="Entry channel: highest high of this many bars")
    exit_channel: int = Field(default=24, ge=2, description="Exit channel: lowest low of this many bars")
    volume_period: int = Field(default=48, ge=1, description="Bars of the average volume")
    volume_mult: float = Field(default=1.5, ge=0.0, description="Breakout volume above this x average (0 = off)")
    atr_period: int = Field(default=14, ge=1, description="ATR period of the trailing stop")
    atr_mult: float = Field(default=0.0, ge=0.0, description="Trailing stop in ATRs; 0 = no trailing stop")


@njit(cache=True)
def breakout_signal(o: Any, h: Any, lo: Any, c: Any, v: Any, mod: Any, t: int, p: Any) -> tuple[bool, bool, float]:
    """(entry, exit, trailing distance); ``p`` = (channel, exit_channel, volume_period, volume_mult, atr_period,
    atr_mult)."""
    up = c[t] > highest(h, t - 1, int(p[0]))
    loud = p[3] <= 0.0 or v[t] > p[3] * mean(v, t - 1, int(p[2]))  # volume_mult 0: no volume filter
    down = c[t] < lowest(lo, t - 1, int(p[1]))
    dist = p[5] * atr(h, lo, c, t, int(p[4])) if p[5] > 0.0 else math.nan
    return up and loud, down, dist


@register_strategy("breakout")
class BreakoutStrategy(SignalStrategy):
    """Long on a confirmed channel breakout; out on the exit channel or the trailing stop."""

    Config = BreakoutConfig
    default_name = "breakout"
    signal = breakout_signal

    def lookback(self) -> int:
        p = self.config
        assert isinstance(p, BreakoutConfig)
        return max(p.channel, p.exit_channel, p.volume_period, p.atr_period) + 1

    def params(self) -> tuple[float, ...]:
        p = self.config
        assert isinstance(p, BreakoutConfig)
        return (float(p.channel), float(p.exit_channel), float(p.volume_period), p.volume_mult,
                float(p.atr_period), p.atr_mult)
