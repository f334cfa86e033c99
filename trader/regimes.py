"""Market regimes, point in time: volatility and trend strength from the bars up to ``t`` and, when
configured, sentiment and on-chain flows from the ``gold.alt_features`` row available at ``t``.

Price regimes:

* ``trend``: ADX(``adx_period``) >= ``trend_adx`` (a directional market);
* ``volatile``: not trending and the ATR as a fraction of the close >= ``volatile_atr_pct``;
* ``range``: neither.

Both indicators are windowed (:mod:`trader.strategies.indicators`), so a price regime at ``t`` depends
on the last ``2 * adx_period`` bars only: truncating the data after ``t`` cannot change it.

Alternative-data rules (off unless configured; :class:`SentimentRule`, :class:`FlowRule`) override the
price regime with their own (``risk_off`` by default, which the selector maps to cash unless told
otherwise) when they fire on the newest alt row available by the bar's close
(:meth:`trader.altdata.AltFeatures.at`). A missing or stale row never counts as neutral: the rule does
not apply and the reason says ``no alt data``. Every reason carries the measured values, e.g.
``sentiment -0.42 <= -0.25 over 24 h (17 docs) overrides trend (ADX 31.2 >= 25)``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from trader.altdata import AltRow
from trader.strategies.indicators import adx, atr

REGIMES = ("trend", "range", "volatile")
RISK_OFF = "risk_off"
#: Regimes an alt rule may name: the price regimes or ``risk_off`` (only alt rules produce it).
ALT_REGIMES = (*REGIMES, RISK_OFF)


def _known_regime(v: str) -> str:
    if v not in ALT_REGIMES:
        raise ValueError(f"regime {v!r} is not one of {ALT_REGIMES}")
    return v


class SentimentRule(BaseModel):
    """Rolling news/social sentiment at or below ``max_sentiment`` with at least ``min_docs`` documents
    (attention) in the window: the regime becomes ``regime``.

    Defaults are not fitted on the data the tests trade (January 2022): they come from BTC's hourly
    ``gold.alt_features`` rows over 2021-10-13 to 2021-12-31 (the shared headlines and tweets, scored as
    ``research/alt_ablation.py`` scores them): 5 documents in 24 h is about the top sixth of hours by
    attention (329 of 1,896), and -0.25 is about the 5th percentile (-0.263) of the 24 h mean sentiment
    in those hours.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    window: Literal["1h", "4h", "24h"] = Field(default="24h", description="gold.alt_features window")
    max_sentiment: float = Field(default=-0.25, ge=-1, le=1, description="Mean sentiment at or below: fires")
    min_docs: int = Field(default=5, ge=1, description="News + posts in the window at least (attention)")
    regime: str = Field(default=RISK_OFF, description="The regime when it fires")

    @field_validator("regime")
    @classmethod
    def _regime(cls, v: str) -> str:
        return _known_regime(v)


class FlowRule(BaseModel):
    """The coin's exchange net inflow over 24 h (``chain_exchange_netflow_24h``, inflow - outflow, coin
    units) at or above its threshold: the regime becomes ``regime`` (coins flowing to exchanges to be sold).

    No default threshold: a flow is in coin units, so each coin needs its own (a coin without one is
    not checked).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_netflow: dict[str, float] = Field(min_length=1, description="Coin -> 24 h net inflow at or above: fires")
    regime: str = Field(default=RISK_OFF, description="The regime when it fires")

    @field_validator("regime")
    @classmethod
    def _regime(cls, v: str) -> str:
        return _known_regime(v)

    @field_validator("min_netflow")
    @classmethod
    def _positive(cls, v: dict[str, float]) -> dict[str, float]:
        for coin, x in v.items():
            if not x > 0:
                raise ValueError(f"min_netflow[{coin!r}] = {x}: must be > 0 (an inflow)")
        return {coin.upper(): x for coin, x in v.items()}


class RegimeConfig(BaseModel):
    """Thresholds of :func:`regime_at`; the alt rules are off (None) unless configured."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    adx_period: int = Field(default=14, ge=2)
    trend_adx: float = Field(default=25.0, ge=0, le=100, description="ADX at or above: trend")
    atr_period: int = Field(default=14, ge=1)
    volatile_atr_pct: float = Field(default=0.012, gt=0, description="ATR / close at or above: volatile")
    sentiment: SentimentRule | None = Field(default=None, description="Sentiment override; None = off")
    flows: FlowRule | None = Field(default=None, description="Exchange net-inflow override; None = off")
    alt_max_age_minutes: int = Field(
        default=120, ge=1, description="An alt row older than this at the bar's close is no alt data (the "
        "alt lane runs hourly, so a live row can be an hour behind plus its run time)")

    @property
    def lookback(self) -> int:
        return max(2 * self.adx_period, self.atr_period + 1)

    @property
    def uses_alt(self) -> bool:
        """Whether any alt rule is configured (only then are alt rows looked up)."""
        return self.sentiment is not None or self.flows is not None

    @property
    def alt_regimes(self) -> set[str]:
        """The regimes the configured alt rules may produce."""
        return {r.regime for r in (self.sentiment, self.flows) if r is not None}


def price_regime(h: Any, lo: Any, c: Any, t: int, cfg: RegimeConfig) -> tuple[str, str]:
    """The regime at bar ``t`` from ADX and ATR, and the reason (the measured values against the thresholds)."""
    a = adx(h, lo, c, t, cfg.adx_period)
    if a >= cfg.trend_adx:
        return "trend", f"ADX {a:.1f} >= {cfg.trend_adx:g}"
    vol = atr(h, lo, c, t, cfg.atr_period) / c[t]
    if vol >= cfg.volatile_atr_pct:
        return "volatile", f"ADX {a:.1f} < {cfg.trend_adx:g}, ATR/close {vol:.4f} >= {cfg.volatile_atr_pct:g}"
    return "range", f"ADX {a:.1f} < {cfg.trend_adx:g}, ATR/close {vol:.4f} < {cfg.volatile_atr_pct:g}"


def _window_text(window: str) -> str:
    return f"{window[:-1]} h"


def alt_regime(cfg: RegimeConfig, row: AltRow | None, now: datetime | None) -> tuple[str | None, str]:
    """The regime the alt rules impose at ``now`` (None: no rule fires or applies) and what they measured.

    ``row`` must be the newest alt row available by ``now`` (:meth:`trader.altdata.AltFeatures.at`).
    """
    if row is None:
        return None, "no alt data"
    if now is not None and now - row.close_time > timedelta(minutes=cfg.alt_max_age_minutes):
        age = (now - row.close_time).total_seconds() / 60
        return None, (f"no alt data (newest row {row.close_time:%Y-%m-%d %H:%M}, {age:.0f} min old > "
                      f"{cfg.alt_max_age_minutes} min)")
    parts: list[str] = []
    fired: str | None = None
    s = cfg.sentiment
    if s is not None:
        w = _window_text(s.window)
        docs = int((row.get(f"news_count_{s.window}") or 0) + (row.get(f"post_count_{s.window}") or 0))
        mean = row.get(f"sent_mean_{s.window}")
        if mean is None or docs < s.min_docs:
            parts.append(f"sentiment {'n/a' if mean is None else f'{mean:+.2f}'} over {w}: {docs} docs < "
                         f"{s.min_docs}")
        elif mean <= s.max_sentiment:
            parts.append(f"sentiment {mean:+.2f} <= {s.max_sentiment:g} over {w} ({docs} docs)")
            fired = s.regime
        else:
            parts.append(f"sentiment {mean:+.2f} > {s.max_sentiment:g} over {w} ({docs} docs)")
    f = cfg.flows
    if f is not None and row.coin in f.min_netflow:
        limit = f.min_netflow[row.coin]
        flow = row.get("chain_exchange_netflow_24h")
        if flow is None:
            parts.append("exchange netflow: no chain data over 24 h")
        elif flow >= limit:
            parts.append(f"exchange netflow {flow:+,.2f} {row.coin} >= {limit:g} over 24 h")
            fired = fired or f.regime
        else:
            parts.append(f"exchange netflow {flow:+,.2f} {row.coin} < {limit:g} over 24 h")
    return fired, "; ".join(parts) if parts else f"no alt rule for {row.coin}"


def regime_at(h: Any, lo: Any, c: Any, t: int, cfg: RegimeConfig, alt: AltRow | None = None,
              now: datetime | None = None) -> tuple[str, str]:
    """The regime at bar ``t`` (closing at ``now``) and the reason.

    Without alt rules configured this is :func:`price_regime`. With them, ``alt`` is the newest alt row
    available at ``now`` (or None); a rule that fires overrides the price regime.
    """
    regime, why = price_regime(h, lo, c, t, cfg)
    if not cfg.uses_alt:
        return regime, why
    imposed, alt_why = alt_regime(cfg, alt, now)
    if imposed is not None and imposed != regime:
        return imposed, f"{alt_why} overrides {regime} ({why})"
    return regime, f"{why}; {alt_why}"
