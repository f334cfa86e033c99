"""The strategy interface: events in, order intents out.

A strategy reacts to bars, signals and its own fills and answers with order intents. It does
no I/O, never reads a clock and keeps no market-data buffers: everything it may know arrives
through the handler arguments and the read-only :class:`StrategyContext` (account, open
orders, last prices and a bounded history of bars per instrument). The trading node routes the
intents through the risk engine to an execution client, so the same class runs in backtest,
paper and live.

Each strategy class names its frozen config (a :class:`StrategyConfig` subclass) as ``Config``;
:mod:`trader.strategies.registry` finds the class by name, ``module:Class`` or
``path/to/file.py:Class``, so a user's strategy needs no change to cryptolake.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from types import MappingProxyType
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from trader.domain import Bar, Fill, Instrument, Order, OrderIntent, Position, Side, Signal, round_qty

_EMPTY: Mapping[str, Sequence[Bar]] = MappingProxyType({})


class StrategyConfig(BaseModel):
    """What every strategy config has. ``kind`` is the registry reference that built it.

    ``name`` prefixes the strategy's client order ids (default: the class's ``default_name``);
    ``symbols`` restricts it to some of the node's symbols (default: all of them).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str = Field(min_length=1, description="Registry name, module:Class or path/to/file.py:Class")
    name: str | None = Field(default=None, min_length=1, max_length=16, pattern=r"^[A-Za-z0-9_]+$")
    symbols: tuple[str, ...] | None = Field(default=None, min_length=1, description="None = every node symbol")


@dataclass(frozen=True, slots=True)
class StrategyContext:
    """A read-only snapshot of what a strategy may see at ``now``."""

    now: datetime
    cash: float
    equity: float
    positions: Mapping[str, Position] = field(default_factory=lambda: MappingProxyType({}))
    last_prices: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    open_orders: tuple[Order, ...] = ()
    instruments: Mapping[str, Instrument] = field(default_factory=lambda: MappingProxyType({}))
    bars: Mapping[str, Sequence[Bar]] = field(default_factory=lambda: _EMPTY)

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

    def history(self, instrument_key: str, n: int | None = None) -> Sequence[Bar]:
        """The last ``n`` (default: all kept) valid bars of ``exchange:symbol``, oldest first.

        The node keeps as many bars per instrument as its strategies ask for
        (:attr:`Strategy.history_bars`); the current bar is the last one.
        """
        bars = self.bars.get(instrument_key, ())
        if n is None or n >= len(bars):
            return tuple(bars)
        return tuple(islice(bars, len(bars) - n, None))

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

    def entry_qty(self, instrument_key: str, fraction: float, cash_reserve: float = 0.01) -> float:
        """A buy quantity worth ``fraction`` of equity at the last price, capped by the free cash.

        Free cash is cash not committed to other open entries, less ``cash_reserve`` of it for
        fees and slippage; the quantity is rounded down to the lot size. 0 when nothing is affordable.
        """
        price = self.last_prices.get(instrument_key)
        inst = self.instruments.get(instrument_key)
        if price is None or inst is None:
            return 0.0
        free = self.cash - self.committed_cash()
        budget = min(fraction * self.equity, free * (1.0 - cash_reserve))
        if budget <= 0:
            return 0.0
        return max(round_qty(budget / price, inst.qty_decimals), 0.0)


class Strategy:
    """Base class: override the handlers you need; each returns the intents to send.

    Subclasses set ``Config`` to their :class:`StrategyConfig` subclass and may raise
    ``history_bars`` (bars of history per instrument the node must keep for them).
    """

    Config: ClassVar[type[StrategyConfig]] = StrategyConfig
    default_name: ClassVar[str] = "strategy"

    def __init__(self, config: StrategyConfig, instruments: Sequence[Instrument]) -> None:
        if not instruments:
            raise ValueError(f"{type(self).__name__} needs at least one instrument")
        self.config = config
        self.instruments: dict[str, Instrument] = {i.key: i for i in instruments}
        self.name: str = config.name or self.default_name
        self.history_bars: int = 0
        self.seq = 0

    def next_id(self, kind: str) -> str:
        """A deterministic, unique client order id: ``<name>-<sequence>-<kind>``."""
        self.seq += 1
        return f"{self.name}-{self.seq:06d}-{kind}"

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> list[OrderIntent]:
        """Called once per closed, valid bar, after the venue has processed it."""
        return []

    def on_signal(self, signal: Signal, ctx: StrategyContext) -> list[OrderIntent]:
        """Called when a model signal becomes available."""
        return []

    def on_fill(self, fill: Fill, ctx: StrategyContext) -> list[OrderIntent]:
        """Called for each fill of this strategy's orders (ctx already includes the fill)."""
        return []
