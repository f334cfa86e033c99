"""Day trading: intraday mean reversion on RSI and Bollinger bands, flat by a UTC session end.

A bar is *in session* when its close time (UTC, minute of day) is in ``[session_start, session_end)``.
Rules at each bar close ``t``:

* entry (in session only): ``RSI(rsi_period) < rsi_entry`` and ``close < mean - bb_k * std`` of the last
  ``bb_period`` closes (oversold below the lower band);
* exit: ``RSI > rsi_exit`` or ``close > mean`` (reverted), or the bar is out of session, so a
  position is closed at the open of the first bar of the session end (never held overnight).
"""

from __future__ import annotations

from typing import Any

from numba import njit
from pydantic import Field, model_validator

from trader.strategies.indicators import mean, rsi, stdev
from trader.strategies.registry import register_strategy
from trader.strategies.signal import SignalConfig, SignalStrategy


def _minutes(hhmm: str) -> int:
    h, _, m = hhmm.partition(":")
    return int(h) * 60 + int(m)


class DayTradeConfig(SignalConfig):
    """Parameters of :class:`DayTradeStrategy`; session times are ``HH:MM`` UTC."""

    kind: str = "daytrade"
    rsi_period: int = Field(default=14, ge=2)
    rsi_entry: float = Field(default=30.0, gt=0.0, lt=100.0, description="Enter below this RSI")
    rsi_exit: float = Field(default=55.0, gt=0.0, lt=100.0, description="Exit above this RSI")
    bb_period: int = Field(default=20, ge=2, description="Bollinger window")
    bb_k: float = Field(default=2.0, gt=0.0, description="Lower band at mean - k standard deviations")
    session_start: str = Field(default="08:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="UTC")
    session_end: str = Field(default="20:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="UTC; flat by then")

    @model_validator(mode="after")
    def _ordered(self) -> DayTradeConfig:
        if _minutes(self.session_start) >= _minutes(self.session_end):
            raise ValueError(f"session_start={self.session_start} must be before session_end={self.session_end}")
        if self.rsi_entry >= self.rsi_exit:
            raise ValueError(f"rsi_entry={self.rsi_entry} must be below rsi_exit={self.rsi_exit}")
        return self


@njit(cache=True)
def daytrade_signal(o: Any, h: Any, lo: Any, c: Any, v: Any, mod: Any, t: int, p: Any) -> tuple[bool, bool, float]:
    """(entry, exit, NaN); ``p`` = (rsi_period, rsi_entry, rsi_exit, bb_period, bb_k, start_min, end_min)."""
    r = rsi(c, t, int(p[0]))
    m = mean(c, t, int(p[3]))
    band = m - p[4] * stdev(c, t, int(p[3]))
    in_session = p[5] <= mod[t] < p[6]
    return in_session and r < p[1] and c[t] < band, (not in_session) or r > p[2] or c[t] > m, float("nan")


@register_strategy("daytrade")
class DayTradeStrategy(SignalStrategy):
    """Buys oversold dips inside the session, sells the reversion; flat outside the session."""

    Config = DayTradeConfig
    default_name = "day"
    signal = daytrade_signal

    def lookback(self) -> int:
        p = self.config
        assert isinstance(p, DayTradeConfig)
        return max(p.rsi_period + 1, p.bb_period)

    def params(self) -> tuple[float, ...]:
        p = self.config
        assert isinstance(p, DayTradeConfig)
        return (float(p.rsi_period), p.rsi_entry, p.rsi_exit, float(p.bb_period), p.bb_k,
                float(_minutes(p.session_start)), float(_minutes(p.session_end)))
