"""Selector: per instrument and bar, the strategy that fits the regime, with hysteresis; choices recorded.

Each bar the regime (:mod:`trader.regimes`) names a preferred member (``by_regime``; ``cash`` = stay
flat). The selector switches to it only after it has been preferred for ``confirm_bars`` consecutive
bars (hysteresis: one noisy bar never flips the choice). On a switch a position is closed at the next
open and the new member's entry signal is followed from then on. Every switch is recorded in
:attr:`SelectorStrategy.choices` with the regime and its measured reason; :func:`trace_choices`
replays the same decisions over a bar frame for reports and the leakage test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator

from trader.domain import Bar, Instrument, timeframe_delta
from trader.regimes import REGIMES, RegimeConfig, regime_at
from trader.strategies.registry import parse_strategy_config, register_strategy, resolve_strategy
from trader.strategies.signal import SignalConfig, SignalStrategy, bar_arrays
from trader.strategy import StrategyConfig, StrategyContext

CASH = "cash"


class SelectorConfig(SignalConfig):
    """Members by name, the member per regime and the hysteresis."""

    kind: str = "selector"
    members: dict[str, Any] = Field(
        default={"swing": {"kind": "swing"}, "day": {"kind": "daytrade"}}, validate_default=True,
        description="Member signal strategies by name")
    by_regime: dict[str, str] = Field(default={"trend": "swing", "range": "day", "volatile": CASH},
                                      description="Member (or 'cash') per regime")
    confirm_bars: int = Field(default=3, ge=1, description="Bars a new choice must persist before switching")
    regime: RegimeConfig = RegimeConfig()

    @field_validator("members", mode="before")
    @classmethod
    def _parse(cls, v: Any) -> dict[str, StrategyConfig]:
        out = {name: parse_strategy_config(m) for name, m in v.items()}
        for name, m in out.items():
            if not issubclass(resolve_strategy(m.kind), SignalStrategy) or m.kind == "selector":
                raise ValueError(f"selector member {name!r} ({m.kind}) is not a signal strategy")
        return out

    @model_validator(mode="after")
    def _mapping(self) -> SelectorConfig:
        if set(self.by_regime) != set(REGIMES):
            raise ValueError(f"by_regime must map exactly {REGIMES}, got {sorted(self.by_regime)}")
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

    def lookback(self) -> int:
        cfg = self.config
        assert isinstance(cfg, SelectorConfig)
        return max([m.history_bars for m in self.members.values()] + [cfg.regime.lookback])

    def params(self) -> tuple[float, ...]:
        return ()

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> list[Any]:
        self._bar = bar
        return super().on_bar(bar, ctx)

    def evaluate(self, arrays: tuple[np.ndarray, ...]) -> tuple[bool, bool, float]:
        assert self._bar is not None
        return self.decide(self._bar.instrument_key, self._bar.close_time, arrays)

    def decide(self, key: str, ts: datetime, arrays: tuple[np.ndarray, ...]) -> tuple[bool, bool, float]:
        """Entry, exit (and no trailing distance) at the last bar of ``arrays``; updates the choice."""
        t = len(arrays[0]) - 1
        regime, why = regime_at(arrays[1], arrays[2], arrays[3], t, self.sel.regime)
        want = self.sel.by_regime[regime]
        current = self.current.get(key, CASH)
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
                self.choices.append(Choice(ts, key.partition(":")[2], regime, want, current,
                                           f"{why} for {n} bars"))
                current, switched = want, True
        if current == CASH:
            return False, True, math.nan
        m = self.members[current]
        assert isinstance(m, SignalStrategy)
        e, x, _ = type(m).signal(*arrays, t, m._params) if not hasattr(m, "members") else m.evaluate(arrays)
        return bool(e) and not switched, bool(x) or switched, math.nan


def trace_choices(config: SelectorConfig, bars: pd.DataFrame, instrument: Instrument) -> pd.DataFrame:
    """The selector's switches over one instrument's valid bars (``open_time`` + OHLCV), as a frame."""
    sel = SelectorStrategy(config, [instrument])
    cols = ("open", "high", "low", "close", "volume")
    rows = [Bar(instrument.exchange, instrument.symbol, "30m", t.to_pydatetime(),
                t.to_pydatetime() + timeframe_delta("30m"), *vals)
            for t, *vals in bars[["open_time", *cols]].itertuples(index=False)]
    n = sel.history_bars
    for i in range(n - 1, len(rows)):
        sel.decide(instrument.key, rows[i].close_time, bar_arrays(rows[i - n + 1 : i + 1]))
    return pd.DataFrame([vars(c) for c in sel.choices], columns=["ts", "symbol", "regime", "chosen", "previous",
                                                                 "reason"])
