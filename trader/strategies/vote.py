"""Vote: several signal strategies decide together.

At each bar close the members' signal functions are evaluated on the same bars; the vote enters when at
least ``min_votes`` members signal an entry and exits when at least ``exit_votes`` members signal an exit
(default 1: any member's exit). Members' trailing stops are not used; the vote's own stop-loss and
take-profit are (``SignalConfig``). Members are any registered signal strategies (``swing``,
``breakout``, ``daytrade`` or a user's subclass of :class:`~trader.strategies.signal.SignalStrategy`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import Field, field_validator, model_validator

from trader.domain import Instrument
from trader.strategies.registry import parse_strategy_config, register_strategy, resolve_strategy
from trader.strategies.signal import SignalConfig, SignalStrategy
from trader.strategy import StrategyConfig


class VoteConfig(SignalConfig):
    """Members (strategy configs with a ``kind``) and the vote thresholds."""

    kind: str = "vote"
    members: tuple[Any, ...] = Field(
        default=({"kind": "swing"}, {"kind": "breakout"}, {"kind": "daytrade"}), min_length=2,
        description="Member signal strategies' configs", validate_default=True,
    )
    min_votes: int = Field(default=2, ge=1, description="Entry signals needed to enter")
    exit_votes: int = Field(default=1, ge=1, description="Exit signals needed to exit")

    @field_validator("members", mode="before")
    @classmethod
    def _parse(cls, v: Any) -> tuple[StrategyConfig, ...]:
        out = tuple(parse_strategy_config(m) for m in v)
        for m in out:
            if not issubclass(resolve_strategy(m.kind), SignalStrategy) or m.kind == "vote":
                raise ValueError(f"vote member {m.kind!r} is not a signal strategy")
        return out

    @model_validator(mode="after")
    def _votes(self) -> VoteConfig:
        for name in ("min_votes", "exit_votes"):
            if getattr(self, name) > len(self.members):
                raise ValueError(f"{name}={getattr(self, name)} exceeds the {len(self.members)} members")
        return self


@register_strategy("vote")
class VoteStrategy(SignalStrategy):
    """Enters on a quorum of member entries; exits on ``exit_votes`` member exits."""

    Config = VoteConfig
    default_name = "vote"

    def __init__(self, config: VoteConfig, instruments: Sequence[Instrument]) -> None:
        self.members = [resolve_strategy(m.kind)(m, instruments) for m in config.members]
        super().__init__(config, instruments)

    def lookback(self) -> int:
        return max(m.history_bars for m in self.members)  # type: ignore[attr-defined]

    def params(self) -> tuple[float, ...]:
        return ()

    def evaluate(self, arrays: tuple[np.ndarray, ...]) -> tuple[bool, bool, float]:
        t = len(arrays[0]) - 1
        entries = exits = 0
        for m in self.members:
            assert isinstance(m, SignalStrategy)
            e, x, _ = type(m).signal(*arrays, t, m._params)
            entries += int(e)
            exits += int(x)
        cfg = self.config
        assert isinstance(cfg, VoteConfig)
        return entries >= cfg.min_votes, exits >= cfg.exit_votes, math.nan

    def combine(self, member_signals: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        """The vote's entry and exit arrays from its members' (for the vectorised engine)."""
        cfg = self.config
        assert isinstance(cfg, VoteConfig)
        entries = np.sum([e for e, _ in member_signals], axis=0) >= cfg.min_votes
        exits = np.sum([x for _, x in member_signals], axis=0) >= cfg.exit_votes
        return entries, exits
