"""Market regimes, point in time: volatility and trend strength from the bars up to ``t`` only.

* ``trend``: ADX(``adx_period``) >= ``trend_adx`` (a directional market);
* ``volatile``: not trending and the ATR as a fraction of the close >= ``volatile_atr_pct``;
* ``range``: neither.

Both indicators are windowed (:mod:`trader.strategies.indicators`), so a regime at ``t`` depends on
the last ``2 * adx_period`` bars only: truncating the data after ``t`` cannot change it. Sentiment and
on-chain flows (``gold.alt_features``) are not used yet (see docs/strategies.md).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trader.strategies.indicators import adx, atr

REGIMES = ("trend", "range", "volatile")


class RegimeConfig(BaseModel):
    """Thresholds of :func:`regime_at`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    adx_period: int = Field(default=14, ge=2)
    trend_adx: float = Field(default=25.0, ge=0, le=100, description="ADX at or above: trend")
    atr_period: int = Field(default=14, ge=1)
    volatile_atr_pct: float = Field(default=0.012, gt=0, description="ATR / close at or above: volatile")

    @property
    def lookback(self) -> int:
        return max(2 * self.adx_period, self.atr_period + 1)


def regime_at(h: Any, lo: Any, c: Any, t: int, cfg: RegimeConfig) -> tuple[str, str]:
    """The regime at bar ``t`` and the reason (the measured values against the thresholds)."""
    a = adx(h, lo, c, t, cfg.adx_period)
    if a >= cfg.trend_adx:
        return "trend", f"ADX {a:.1f} >= {cfg.trend_adx:g}"
    vol = atr(h, lo, c, t, cfg.atr_period) / c[t]
    if vol >= cfg.volatile_atr_pct:
        return "volatile", f"ADX {a:.1f} < {cfg.trend_adx:g}, ATR/close {vol:.4f} >= {cfg.volatile_atr_pct:g}"
    return "range", f"ADX {a:.1f} < {cfg.trend_adx:g}, ATR/close {vol:.4f} < {cfg.volatile_atr_pct:g}"
