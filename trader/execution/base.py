"""The execution client interface: how the engine talks to a venue.

Orders flow one way: strategy -> risk engine -> trading node -> :class:`ExecutionClient`. Paper
and live trading are two implementations of this interface (never a flag). What a *real* venue
implements is only :class:`ExecutionClient`; advancing a venue through market data
(:class:`MarketSimulator`) belongs to the simulated venue alone, which the node is given as its
simulator in backtest and paper configurations.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from cryptolake.errors import FatalError
from trader.domain import Bar, Fill, Order

FillHandler = Callable[[Fill], None]


class ReconciliationError(FatalError):
    """The venue's orders or positions disagree with the engine's: trading must not start."""


@dataclass(frozen=True)
class ReconcileReport:
    """What the venue says we have: open orders, net positions by ``exchange:symbol`` and fill count.

    ``tolerance``: how far a position may differ (per instrument; a real venue's balances are only
    exact to its precision); ``cash``: the venue's balance per quote currency, when it keeps one;
    ``halt_on_mismatch``: a real venue's disagreement halts the node (with the reason) instead of
    refusing to start, so its open orders can still be cancelled and the state inspected;
    ``settled``: False when fills kept arriving between every balance read and the trades read after
    it, so the balances may hold a fill the books have not adopted yet (no verdict; read again later).
    """

    open_orders: tuple[Order, ...] = ()
    positions: dict[str, float] = field(default_factory=dict)
    fills: int = 0
    tolerance: dict[str, float] = field(default_factory=dict)
    cash: dict[str, float] = field(default_factory=dict)
    halt_on_mismatch: bool = False
    local_orders: tuple[str, ...] = ()  # open orders the client holds itself (emulated stops), not at the venue
    settled: bool = True


class ExecutionClient(ABC):
    """A venue connection: submit, cancel, query, open orders, reconcile."""

    @abstractmethod
    def submit(self, order: Order, ts: datetime) -> Order:
        """Send an approved order; returns it ACCEPTED (with a venue id) or REJECTED with a reason."""

    @abstractmethod
    def cancel(self, client_id: str, ts: datetime) -> Order | None:
        """Cancel an open order by client id; returns it CANCELED, or None if it is not open."""

    @abstractmethod
    def query(self, client_id: str) -> Order:
        """The venue's view of one order (raises OrderNotFoundError if unknown)."""

    @abstractmethod
    def open_orders(self, instrument_key: str | None = None) -> list[Order]:
        """Open orders, optionally for one ``exchange:symbol``."""

    @abstractmethod
    def reconcile(self, on_fill: FillHandler | None = None) -> ReconcileReport:
        """Everything the venue knows, so the engine can check its state before trading. A live venue keeps
        matching while it is read: ``on_fill`` books the fills it made meanwhile, so the balances and the
        books describe the same fills."""

    def poll(self, on_fill: FillHandler, bar: Bar | None = None) -> int:
        """Report fills the venue made since the last call (a real venue; a simulator fills from bars)."""
        return 0


@runtime_checkable
class MarketSimulator(Protocol):
    """A simulated venue: it turns market data into fills of the orders resting there."""

    def process_bar(self, bar: Bar, on_fill: FillHandler) -> None:
        """Advance the venue through ``bar`` and report every fill, in order, through ``on_fill``.

        ``on_fill`` may submit or cancel orders re-entrantly; an order submitted during the
        call takes part in the rest of the bar if the venue's rules allow it.
        """
