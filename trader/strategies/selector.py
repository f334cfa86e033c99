"""Selector: per instrument and bar, the strategy that fits the regime, with hysteresis; choices recorded.

Each bar the regime (:mod:`trader.regimes`) names a preferred member (``by_regime``; ``cash`` = stay
flat). With alt rules in ``regime`` (sentiment, exchange flows), the regime also reads the newest
``gold.alt_features`` row of the instrument's coin available by the bar's close, from the config's
point-in-time side input ``alt`` (:class:`trader.altdata.AltFeatures`); ``risk_off``, the regime those
rules produce by default, maps to cash unless ``by_regime`` names a member for it. The selector switches
to it only after it has been preferred for ``confirm_bars`` consecutive bars (hysteresis: one noisy bar
never flips the choice). On a switch a position is closed at the next open and the new member's entry
signal is followed from then on. Every switch is recorded in
:attr:`SelectorStrategy.choices` with the regime and its measured reason. With ``perf_bars`` the
choice also follows rolling out-of-sample performance: every bar member runs a shadow of its own
signals, and the regime's member is passed over while its trailing net return is not positive.
:func:`trace_choices` replays the same decisions over a bar frame for reports and the leakage test.

Members are signal strategies (decided at each bar close from the bars) or ``mlsignal`` members,
which trade the model's signals: while an ML member is chosen for an instrument, the selector applies
its cost-aware thresholds to each signal as it arrives (:func:`trader.strategies.mlsignal.ml_intents`);
the signal about bar ``t`` arrives after bar ``t`` has closed, so it sees the choice made at ``t``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ConfigDict, Field, field_validator, model_validator

from trader.altdata import AltFeatures, coin_of
from trader.domain import Bar, Instrument, OrderIntent, Signal, timeframe_delta
from trader.regimes import REGIMES, RISK_OFF, RegimeConfig, regime_at
from trader.strategies.mlsignal import MlSignalConfig, MlSignalStrategy, ml_intents
from trader.strategies.registry import parse_strategy_config, register_strategy, resolve_strategy
from trader.strategies.signal import SignalConfig, SignalStrategy, bar_arrays
from trader.strategy import StrategyConfig, StrategyContext

CASH = "cash"


class SelectorConfig(SignalConfig):
    """Members by name, the member per regime and the hysteresis."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    kind: str = "selector"
    members: dict[str, Any] = Field(
        default={"swing": {"kind": "swing"}, "day": {"kind": "daytrade"}}, validate_default=True,
        description="Member signal strategies by name")
    by_regime: dict[str, str] = Field(default={"trend": "swing", "range": "day", "volatile": CASH},
                                      description="Member (or 'cash') per regime")
    confirm_bars: int = Field(default=3, ge=1, description="Bars a new choice must persist before switching")
    warm_bars: int = Field(default=96, ge=0, description="Bars before an instrument's first decision replayed "
                           "(unrecorded) to set the choice a run starts with, so a run continuing an account "
                           "does not start in cash")
    regime: RegimeConfig = RegimeConfig()
    perf_bars: int = Field(default=0, ge=0, description="Trailing bars of each bar member's shadow (hypothetical) "
                           "net return; the regime's member is chosen only while its return there is > 0, else "
                           "the best positive member, else cash. 0 = by regime only")
    perf_cost: float = Field(default=0.003, ge=0, description="Round-trip cost (log) charged to a shadow trade")
    alt: AltFeatures | None = Field(
        default=None, exclude=True, description="Point-in-time gold.alt_features rows the alt rules of "
        "``regime`` read (a side input, not configuration: excluded from dumps; None = no alt data)")

    @field_validator("members", mode="before")
    @classmethod
    def _parse(cls, v: Any) -> dict[str, StrategyConfig]:
        out = {name: parse_strategy_config(m) for name, m in v.items()}
        for name, m in out.items():
            cls_ = resolve_strategy(m.kind)
            if not issubclass(cls_, SignalStrategy | MlSignalStrategy) or m.kind == "selector":
                raise ValueError(f"selector member {name!r} ({m.kind}) is neither a signal nor an mlsignal strategy")
        return out

    @model_validator(mode="after")
    def _mapping(self) -> SelectorConfig:
        if not set(REGIMES) <= set(self.by_regime) <= {*REGIMES, RISK_OFF}:
            raise ValueError(f"by_regime must map exactly {REGIMES} (and optionally {RISK_OFF!r}), "
                             f"got {sorted(self.by_regime)}")
        unknown = {m for m in self.by_regime.values() if m != CASH and m not in self.members}
        if unknown:
            raise ValueError(f"by_regime names unknown members {sorted(unknown)} (members: {sorted(self.members)})")
        return self


@dataclass(frozen=True)
class Choice:
    """A switch of the selector: when, where, to what, in which regime and why."""

    ts: datetime
    symbol: str
    regime: str
    chosen: str
    previous: str
    reason: str


@register_strategy("selector")
class SelectorStrategy(SignalStrategy):
    """Follows the member that fits the regime, switching only after ``confirm_bars`` bars."""

    Config = SelectorConfig
    default_name = "sel"

    def __init__(self, config: SelectorConfig, instruments: Sequence[Instrument]) -> None:
        self.members = {n: resolve_strategy(m.kind)(m, instruments) for n, m in config.members.items()}
        super().__init__(config, instruments)
        self.sel = config
        self.current: dict[str, str] = {}
        self.streak: dict[str, tuple[str, int]] = {}
        self.choices: list[Choice] = []
        self._bar: Bar | None = None
        self._times: list[datetime] | None = None
        self._alt_on = config.regime.uses_alt
        self._coins = {k: coin_of(i.symbol) for k, i in self.instruments.items()}
        # Per instrument: each bar member's shadow position and its last ``perf_bars`` net log returns.
        self._shadow: dict[str, dict[str, tuple[bool, deque[float]]]] = {}

    def lookback(self) -> int:
        cfg = self.config
        assert isinstance(cfg, SelectorConfig)
        return max([m.history_bars for m in self.members.values()] + [cfg.regime.lookback]) + cfg.warm_bars

    def on_signal(self, signal: Signal, ctx: StrategyContext) -> list[OrderIntent]:
        m = self.members.get(self.current.get(signal.instrument_key, CASH))
        if not isinstance(m, MlSignalStrategy):
            return []
        assert isinstance(m.cfg, MlSignalConfig)
        return ml_intents(self, m.cfg, signal, ctx, self.fraction, self.cfg.cash_reserve)

    def params(self) -> tuple[float, ...]:
        return ()

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> list[Any]:
        self._bar = bar
        if self._alt_on and bar.instrument_key not in self.current:  # the warm-up replay needs its bars' times
            self._times = [b.close_time for b in ctx.history(bar.instrument_key, self.history_bars)]
        return super().on_bar(bar, ctx)

    def evaluate(self, arrays: tuple[np.ndarray, ...]) -> tuple[bool, bool, float]:
        assert self._bar is not None
        times, self._times = self._times, None
        return self.decide(self._bar.instrument_key, self._bar.close_time, arrays, times)

    def decide(self, key: str, ts: datetime, arrays: tuple[np.ndarray, ...],
               times: Sequence[datetime] | None = None) -> tuple[bool, bool, float]:
        """Entry, exit (and no trailing distance) at the last bar of ``arrays``, closing at ``ts``; updates
        the choice. ``times``: the close time of every bar of ``arrays`` (the warm-up replay's alt rows;
        without them a replayed bar sees no alt data)."""
        t = len(arrays[0]) - 1
        if key not in self.current:  # the first decision: replay the warm-up bars' choices, unrecorded
            self.current[key] = CASH
            if times is not None and len(times) != t + 1:
                raise ValueError(f"times has {len(times)} close times for {t + 1} bars")
            for j in range(max(self.sel.regime.lookback - 1, t - self.sel.warm_bars), t):
                self._choose(key, times[j] if times is not None else None, arrays, j, record=False)
        current, switched = self._choose(key, ts, arrays, t, record=True)
        if current == CASH:
            return False, True, math.nan
        m = self.members[current]
        if isinstance(m, MlSignalStrategy):
            return False, switched, math.nan  # it trades on the signals (on_signal)
        assert isinstance(m, SignalStrategy)
        e, x, _ = type(m).signal(*arrays, t, m._params) if not hasattr(m, "members") else m.evaluate(arrays)
        return bool(e) and not switched, bool(x) or switched, math.nan

    def _choose(self, key: str, ts: datetime | None, arrays: tuple[np.ndarray, ...], t: int, *, record: bool
                ) -> tuple[str, bool]:
        """The member chosen at bar ``t`` of ``arrays`` (closing at ``ts``; the hysteresis' state updated) and
        whether it switched."""
        if self._alt_on:
            alt = self.sel.alt
            row = alt.at(self._coins[key], ts) if alt is not None and ts is not None else None
            regime, why = regime_at(arrays[1], arrays[2], arrays[3], t, self.sel.regime, row, ts)
        else:
            regime, why = regime_at(arrays[1], arrays[2], arrays[3], t, self.sel.regime)
        want = self.sel.by_regime.get(regime, CASH)
        if self.sel.perf_bars:
            want, why = self._by_performance(key, arrays, t, want, why)
        current = self.current[key]
        switched = False
        if want == current:
            self.streak.pop(key, None)
        else:
            name, n = self.streak.get(key, (want, 0))
            n = n + 1 if name == want else 1
            self.streak[key] = (want, n)
            if n >= self.sel.confirm_bars:
                self.current[key] = want
                self.streak.pop(key, None)
                if record:
                    assert ts is not None
                    self.choices.append(Choice(ts, key.partition(":")[2], regime, want, current,
                                               f"{why} for {n} bars"))
                current, switched = want, True
        return current, switched

    def _by_performance(self, key: str, arrays: tuple[np.ndarray, ...], t: int, want: str, why: str
                        ) -> tuple[str, str]:
        """Advance every bar member's shadow to bar ``t``; keep ``want`` only if its trailing net return is > 0.

        A shadow trades the member's own entry and exit signals on the bars up to ``t`` (entering at the
        close it decides on, a round trip costing ``perf_cost``): the trailing return is out of sample
        for every later decision. ML and vote members have no shadow and are always eligible.
        """
        c = arrays[3]
        shadows = self._shadow.setdefault(key, {})
        for name, m in self.members.items():
            if not isinstance(m, SignalStrategy) or hasattr(m, "members"):
                continue
            held, rets = shadows.get(name, (False, deque(maxlen=self.sel.perf_bars)))
            r = math.log(c[t] / c[t - 1]) if held and t > 0 else 0.0
            e, x, _ = type(m).signal(*arrays, t, m._params)
            if held and x:
                held, r = False, r - self.sel.perf_cost / 2
            elif not held and e:
                held, r = True, r - self.sel.perf_cost / 2
            rets.append(r)
            shadows[name] = (held, rets)
        trailing = {n: sum(r) for n, (_, r) in shadows.items() if len(r) == self.sel.perf_bars}
        if want == CASH or want not in trailing or trailing[want] > 0:
            return want, why
        best = max(trailing, key=lambda n: (trailing[n], n))
        if trailing[best] > 0:
            return best, (f"{why}; {want} {trailing[want]:+.4f} over {self.sel.perf_bars} bars, "
                          f"{best} {trailing[best]:+.4f}")
        return CASH, f"{why}; no member positive over {self.sel.perf_bars} bars ({want} {trailing[want]:+.4f})"


def trace_choices(config: SelectorConfig, bars: pd.DataFrame, instrument: Instrument, timeframe: str = "30m"
                  ) -> pd.DataFrame:
    """The selector's switches over one instrument's valid bars (``open_time`` + OHLCV of ``timeframe``), as a
    frame; with alt rules, each bar sees the config's ``alt`` rows available by its close, as in the node."""
    sel = SelectorStrategy(config, [instrument])
    cols = ("open", "high", "low", "close", "volume")
    step = timeframe_delta(timeframe)
    rows = [Bar(instrument.exchange, instrument.symbol, timeframe, t.to_pydatetime(), t.to_pydatetime() + step,
                *vals)
            for t, *vals in bars[["open_time", *cols]].itertuples(index=False)]
    n = sel.history_bars
    for i in range(n - 1, len(rows)):
        window = rows[i - n + 1 : i + 1]
        times = [b.close_time for b in window] if i == n - 1 else None
        sel.decide(instrument.key, rows[i].close_time, bar_arrays(window), times)
    return pd.DataFrame([vars(c) for c in sel.choices], columns=["ts", "symbol", "regime", "chosen", "previous",
                                                                 "reason"])
