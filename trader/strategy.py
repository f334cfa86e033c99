"""The strategy interface.

A strategy reacts to bars, signals and its own fills and answers with order intents. It does
no I/O and never reads a clock: everything it may know arrives through the handler arguments
and the read-only :class:`StrategyContext`. The engine routes the intents through the risk
engine to an execution client, so the same strategy class runs in backtest, paper and live.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from trader.domain import Bar, Fill, Order, OrderIntent, Position, Side, Signal


@dataclass(frozen=True, slots=True)
class StrategyContext:
    """A read-only snapshot of what the strategy may see at ``now``."""

    now: datetime
    cash: float
    equity: float
    positions: Mapping[str, Position] = field(default_factory=lambda: MappingProxyType({}))
    last_prices: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    open_orders: tuple[Order, ...] = ()

    def position(self, instrument_key: str) -> Position:
        """The position in ``exchange:symbol`` (flat if none)."""
        pos = self.positions.get(instrument_key)
        if pos is None:
            exchange, _, symbol = instrument_key.partition(":")
            return Position(exchange, symbol)
        return pos

    def last_price(self, instrument_key: str) -> float | None:
        """The last close seen for ``exchange:symbol``, or None before the first bar."""
        return self.last_prices.get(instrument_key)

    def orders_for(self, instrument_key: str) -> tuple[Order, ...]:
        """Open orders in ``exchange:symbol``."""
        return tuple(o for o in self.open_orders if o.instrument_key == instrument_key)

    def committed_cash(self) -> float:
        """Cash that open buy orders (not reduce-only) will spend, valued at their price or the last close.

        In an account trading several instruments, entries sent at the same instant fill later;
        sizing from ``cash - committed_cash()`` keeps them from spending the same cash twice.
        """
        total = 0.0
        for o in self.open_orders:
            if o.side is Side.BUY and not o.reduce_only:
                px = o.price if o.price is not None else self.last_prices.get(o.instrument_key, 0.0)
                total += (o.qty - o.filled_qty) * px
        return total


class Strategy(ABC):
    """Base class: override the handlers you need; each returns the intents to send."""

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> list[OrderIntent]:
        """Called once per closed bar, after the venue has processed it."""
        return []

    def on_signal(self, signal: Signal, ctx: StrategyContext) -> list[OrderIntent]:
        """Called when a model signal becomes available."""
        return []

    def on_fill(self, fill: Fill, ctx: StrategyContext) -> list[OrderIntent]:
        """Called for each fill of this strategy's orders (ctx already includes the fill)."""
        return []

    @property
    @abstractmethod
    def name(self) -> str:
        """A short identifier, used as the prefix of client order ids."""


class InstrumentRouter(Strategy):
    """One strategy instance per instrument behind the single strategy an engine runs.

    Bars, signals and fills go to the instance of their ``exchange:symbol`` (others are not
    called), so each instance stays a plain one-instrument strategy while they share the one
    account the context shows (cash and equity are account-wide).
    """

    def __init__(self, strategies: Mapping[str, Strategy]) -> None:
        if not strategies:
            raise ValueError("InstrumentRouter needs at least one strategy")
        names = [s.name for s in strategies.values()]
        if len(set(names)) != len(names):
            raise ValueError(f"strategy names {names} must be unique (they prefix client order ids)")
        self.strategies = dict(strategies)

    @property
    def name(self) -> str:
        return "+".join(s.name for s in self.strategies.values())

    def _for(self, key: str) -> Sequence[Strategy]:
        s = self.strategies.get(key)
        return (s,) if s is not None else ()

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> list[OrderIntent]:
        return [i for s in self._for(bar.instrument_key) for i in s.on_bar(bar, ctx)]

    def on_signal(self, signal: Signal, ctx: StrategyContext) -> list[OrderIntent]:
        return [i for s in self._for(signal.instrument_key) for i in s.on_signal(signal, ctx)]

    def on_fill(self, fill: Fill, ctx: StrategyContext) -> list[OrderIntent]:
        return [i for s in self._for(fill.instrument_key) for i in s.on_fill(fill, ctx)]
