"""The trading engine and its clock.

The engine wires one data feed to one strategy (possibly an
:class:`~trader.strategy.InstrumentRouter` over one strategy per instrument), the risk engine,
one execution client and the portfolio of one account (one cash balance, one position per
instrument). Backtest, paper and live differ only in who calls :meth:`Engine.on_event` (a sorted
list or a Kafka feed), the clock, and the execution client.

Events are processed in :func:`event_sort_key` order: by ``available_time`` (when each became
knowable), bars before signals at the same instant (a signal about bar ``t`` is scored once
``t`` has closed), then by instrument and event time. For each bar the engine:

1. lets the execution client process the bar (fills of resting and pending orders, each
   passed to the portfolio and then to ``strategy.on_fill``);
2. marks the portfolio to the close, feeds equity to the risk engine and records it (one
   equity point per close time: the bars of other instruments closing at the same instant
   update that point, so the curve is the account's, marked with every price known then);
3. calls ``strategy.on_bar``.

Every intent goes through the risk engine; cancels always pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType

from cryptolake.errors import DataValidationError
from cryptolake.logs import get_logger
from trader.domain import Bar, Fill, Instrument, Order, OrderIntent, OrderStatus, Rejection, Signal
from trader.execution.base import ExecutionClient, ReconciliationError
from trader.portfolio import Portfolio, Trade
from trader.risk import AccountExposure, RiskEngine
from trader.strategy import Strategy, StrategyContext

log = get_logger(__name__)

Event = Bar | Signal


def event_sort_key(event: Event) -> tuple[datetime, int, str, datetime]:
    """The one ordering of events used by backtest and live alike."""
    if isinstance(event, Bar):
        return event.close_time, 0, event.instrument_key, event.open_time
    return event.available_time, 1, event.instrument_key, event.bar_time


class SimClock:
    """A clock that only moves when an event says so (deterministic, never reads wall time)."""

    def __init__(self) -> None:
        self._now: datetime | None = None

    def now(self) -> datetime:
        if self._now is None:
            raise RuntimeError("the clock has not been set: no event processed yet")
        return self._now

    def advance(self, ts: datetime) -> None:
        """Move the clock to ``ts`` (never backwards)."""
        if self._now is not None and ts < self._now:
            raise DataValidationError("ts", ts, f"is before the clock's time {self._now.isoformat()}")
        self._now = ts

    def catch_up(self, ts: datetime) -> None:
        """Move forward to ``ts`` if it is later; an earlier time (an open-price fill) keeps the clock."""
        if self._now is None or ts > self._now:
            self._now = ts


@dataclass(frozen=True, slots=True)
class EquityPoint:
    """The account marked at a bar close time: equity, cash, gross position notional, positions held."""

    ts: datetime
    equity: float
    cash: float
    gross_exposure: float
    open_positions: int
    risk_state: str


@dataclass
class EngineChanges:
    """What changed since the previous :meth:`Engine.drain_changes` (for incremental persistence)."""

    orders: list[Order] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    equity: list[EquityPoint] = field(default_factory=list)
    trades: list[Trade] = field(default_factory=list)


class Engine:
    """Routes events to the strategy and orders to the venue; keeps the books."""

    def __init__(
        self,
        strategy: Strategy,
        risk: RiskEngine,
        client: ExecutionClient,
        portfolio: Portfolio,
        instruments: list[Instrument],
        clock: SimClock | None = None,
    ) -> None:
        self.strategy = strategy
        self.risk = risk
        self.client = client
        self.portfolio = portfolio
        self.instruments = {i.key: i for i in instruments}
        self.clock = clock or SimClock()
        self.orders: dict[str, Order] = {}
        self.fills: list[Fill] = []
        self.equity: list[EquityPoint] = []
        self.rejections: list[Rejection] = []
        self.events_processed = 0
        self._last_key: tuple[datetime, int, str, datetime] | None = None
        self._dirty: set[str] = set()
        self._drained = {"fills": 0, "equity": 0, "trades": 0}
        self._started = False

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Reconcile with the venue; refuse to trade if it disagrees with the books."""
        report = self.client.reconcile()
        ours = {k: p.qty for k, p in self.portfolio.positions.items() if p.qty}
        if report.positions != ours:
            raise ReconciliationError(f"venue positions {report.positions} != engine positions {ours}")
        known = {o.client_id for o in self.orders.values() if o.is_open}
        venue = {o.client_id for o in report.open_orders}
        if venue != known:
            raise ReconciliationError(f"venue open orders {sorted(venue)} != engine open orders {sorted(known)}")
        self._started = True
        log.info("engine.started", extra={"instruments": sorted(self.instruments), "strategy": self.strategy.name})

    def on_event(self, event: Event) -> None:
        """Process one bar or signal. Events must arrive in :func:`event_sort_key` order."""
        if not self._started:
            self.start()
        key = event_sort_key(event)
        if self._last_key is not None and key <= self._last_key:
            raise DataValidationError("event", key, f"out of order or duplicate (last processed {self._last_key})")
        self._last_key = key
        if event.instrument_key not in self.instruments:
            raise DataValidationError(
                "instrument", event.instrument_key, f"not traded by this engine ({sorted(self.instruments)})"
            )
        self.events_processed += 1
        if isinstance(event, Bar):
            self._on_bar(event)
        else:
            self.clock.advance(event.available_time)
            self._route(self.strategy.on_signal(event, self._ctx()))

    # --- handlers -------------------------------------------------------------------------
    def _on_bar(self, bar: Bar) -> None:
        self.client.process_bar(bar, self._on_fill)
        self.clock.advance(bar.close_time)
        key = bar.instrument_key
        p = self.portfolio
        p.mark(key, bar.close)
        equity = p.equity()
        self.risk.on_equity(equity, bar.close_time)
        gross, held = 0.0, 0
        for k, pos in p.positions.items():
            if pos.qty:
                gross += abs(pos.qty) * p.last_prices.get(k, pos.avg_price)
                held += 1
        point = EquityPoint(bar.close_time, equity, p.cash, gross, held, str(self.risk.state))
        if self.equity and self.equity[-1].ts == bar.close_time:
            self.equity[-1] = point  # another instrument's bar at the same close: one point per instant
            self._drained["equity"] = min(self._drained["equity"], len(self.equity) - 1)
        else:
            self.equity.append(point)
        self._route(self.strategy.on_bar(bar, self._ctx()))

    def _on_fill(self, fill: Fill) -> None:
        self.clock.catch_up(fill.ts)
        self.portfolio.apply(fill)
        self.fills.append(fill)
        self._dirty.add(fill.client_id)
        # OCO siblings cancelled by the venue are refreshed by drain_changes (it re-queries open orders)
        self._route(self.strategy.on_fill(fill, self._ctx()))

    def _ctx(self) -> StrategyContext:
        p = self.portfolio
        return StrategyContext(
            now=self.clock.now(),
            cash=p.cash,
            equity=p.equity(),
            positions=MappingProxyType(dict(p.positions)),
            last_prices=MappingProxyType(dict(p.last_prices)),
            open_orders=tuple(self.client.open_orders()),
        )

    def _route(self, intents: list[OrderIntent]) -> None:
        now = self.clock.now()
        for intent in intents:
            if intent.instrument_key not in self.instruments:
                self._reject(intent, now, f"instrument {intent.instrument_key!r} not traded by this engine")
                continue
            if intent.is_cancel:
                self.client.cancel(intent.client_id, now)
                self._dirty.add(intent.client_id)
                continue
            decision = self.risk.check(
                intent,
                self.portfolio.positions[intent.instrument_key],
                self.portfolio.last_prices.get(intent.instrument_key),
                now,
                self._exposure(intent.instrument_key),
            )
            if isinstance(decision, Rejection):
                self._reject(intent, now, decision.reason)
                continue
            placed = self.client.submit(decision, now)
            self.orders[placed.client_id] = placed
            self._dirty.add(placed.client_id)
            if placed.status is OrderStatus.REJECTED:
                self.rejections.append(Rejection(intent, f"venue: {placed.reason}", now))

    def _exposure(self, instrument_key: str) -> AccountExposure:
        """The other instruments' positions, counting open entry orders as if filled (they will be)."""
        p = self.portfolio
        notional: dict[str, float] = {}
        for k, pos in p.positions.items():
            if pos.qty and k != instrument_key:
                notional[k] = abs(pos.qty) * p.last_prices.get(k, pos.avg_price)
        for o in self.client.open_orders():
            k = o.instrument_key
            if k != instrument_key and not o.reduce_only and o.tag != "cancel":
                px = o.price if o.price is not None else p.last_prices.get(k, 0.0)
                notional[k] = notional.get(k, 0.0) + (o.qty - o.filled_qty) * px
        return AccountExposure(p.equity(), sum(notional.values()), len(notional))

    def _reject(self, intent: OrderIntent, now: datetime, reason: str) -> None:
        self.rejections.append(Rejection(intent, reason, now))
        if intent.client_id not in self.orders:
            self.orders[intent.client_id] = Order.from_intent(
                intent, now, status=OrderStatus.REJECTED, updated_at=now, reason=reason
            )
            self._dirty.add(intent.client_id)

    # --- outputs --------------------------------------------------------------------------
    def _refresh(self, client_id: str) -> Order:
        order = self.orders[client_id]
        if order.id:  # known to the venue: the venue's view is the truth
            order = self.client.query(client_id)
            self.orders[client_id] = order
        return replace(order)

    def all_orders(self) -> list[Order]:
        """Every order (including risk rejections), refreshed from the venue."""
        return [self._refresh(cid) for cid in list(self.orders)]

    def drain_changes(self) -> EngineChanges:
        """Orders, fills, equity points and trades new or changed since the last call."""
        dirty = self._dirty | {cid for cid, o in self.orders.items() if o.is_open}
        self._dirty = set()
        orders = [self._refresh(cid) for cid in self.orders if cid in dirty]
        d = self._drained
        changes = EngineChanges(
            orders, self.fills[d["fills"] :], self.equity[d["equity"] :], self.portfolio.trades[d["trades"] :]
        )
        d["fills"], d["equity"], d["trades"] = len(self.fills), len(self.equity), len(self.portfolio.trades)
        return changes
