"""Swing trading: trend following with a moving-average filter, an ADX strength filter and an ATR trailing stop.

Rules at each bar close ``t`` (indicators of :mod:`trader.strategies.indicators`, all over closed bars):

* entry: ``SMA(close, fast) > SMA(close, slow)`` and ``ADX(adx_period) >= adx_min`` (a trend strong enough
  to follow);
* exit: ``SMA(close, fast) < SMA(close, slow)`` (the trend turned);
* trailing stop: ``atr_mult * ATR(atr_period)`` below the highest ``close - atr_mult * ATR`` since
  entry; a close below it exits at the next open.

Sizing, stop-loss and take-profit as every signal strategy (:mod:`trader.strategies.signal`).
"""

from __future__ import annotations

from typing import Any

from numba import njit
from pydantic import Field, model_validator

from trader.strategies.indicators import adx, atr, mean
from trader.strategies.registry import register_strategy
from trader.strategies.signal import SignalConfig, SignalStrategy


class SwingConfig(SignalConfig):
    """Parameters of :class:`SwingStrategy` (periods in bars)."""

    kind: str = "swing"
    fast: int = Field(default=20, ge=1, description="Fast SMA of closes")
    slow: int = Field(default=100, ge=2, description="Slow SMA of closes")
    adx_period: int = Field(default=14, ge=2, description="ADX period")
    adx_min: float = Field(default=20.0, ge=0.0, le=100.0, description="Minimum ADX to enter")
    atr_period: int = Field(default=14, ge=1, description="ATR period of the trailing stop")
    atr_mult: float = Field(default=3.0, gt=0.0, description="Trailing stop distance in ATRs")

    @model_validator(mode="after")
    def _fast_below_slow(self) -> SwingConfig:
        if self.fast >= self.slow:
            raise ValueError(f"fast={self.fast} must be below slow={self.slow}")
        return self


@njit(cache=True)
def swing_signal(o: Any, h: Any, lo: Any, c: Any, v: Any, mod: Any, t: int, p: Any) -> tuple[bool, bool, float]:
    """(entry, exit, trailing distance) at bar ``t``; ``p`` = (fast, slow, adx_period, adx_min, atr_period, mult)."""
    fast = mean(c, t, int(p[0]))
    slow = mean(c, t, int(p[1]))
    strong = adx(h, lo, c, t, int(p[2])) >= p[3]
    return fast > slow and strong, fast < slow, p[5] * atr(h, lo, c, t, int(p[4]))


@register_strategy("swing")
class SwingStrategy(SignalStrategy):
    """Long while a strong trend lasts; out on the trend's turn or the ATR trailing stop."""

    Config = SwingConfig
    default_name = "swing"
    signal = swing_signal

    def lookback(self) -> int:
        p = self.config
        assert isinstance(p, SwingConfig)
        return max(p.slow, 2 * p.adx_period, p.atr_period + 1)

    def params(self) -> tuple[float, ...]:
        p = self.config
        assert isinstance(p, SwingConfig)
        return (float(p.fast), float(p.slow), float(p.adx_period), p.adx_min, float(p.atr_period), p.atr_mult)
