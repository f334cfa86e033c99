"""The trading node: the only way a strategy runs.

A :class:`TradingNode` holds strategies, the risk engine, one execution client, the portfolio
of one account (one cash balance, one position per instrument) and a clock, and is driven by an
:class:`~trader.feeds.base.EventFeed`. Backtest, paper and live are configurations of it
(:mod:`trader.build`): which feed (a frame or Kafka), which clock, which execution client, and
whether a simulated venue (:class:`~trader.execution.base.MarketSimulator`) turns bars into fills.

Events are processed in :func:`event_sort_key` order: by ``available_time`` (when each became
knowable), bars before signals at the same instant (a signal about bar ``t`` is scored once
``t`` has closed), then by instrument and event time. For each valid bar the node:

1. lets the simulated venue, if any, process the bar (fills of resting and pending orders, each
   passed to the portfolio and then to the owning strategy's ``on_fill``);
2. marks the portfolio to the close, feeds equity to the risk engine and records it (one
   equity point per close time: the bars of other instruments closing at the same instant
   update that point, so the curve is the account's, marked with every price known then);
3. appends the bar to the instrument's bounded history and calls every strategy trading it.

A bar that breaks the candle rule arrives as a :class:`~trader.feeds.base.SkippedBar`; a flat
bar beyond ``max_flat_bars`` in a run is stale (:mod:`cryptolake.bars`). Both are skipped,
counted by reason and listed, identically whatever the feed. Bars before ``start_time`` only
warm up history, stale runs and last prices. Every intent goes through the risk engine;
cancels always pass. A signal id seen before is ignored (counted).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType

from cryptolake.bars import STALE, StaleTracker, is_flat
from cryptolake.errors import ConfigError, DataValidationError, OrderNotFoundError
from cryptolake.logs import get_logger
from trader.clock import SimClock
from trader.domain import Bar, Fill, Instrument, Order, OrderIntent, OrderStatus, Rejection, Side, Signal, round_qty
from trader.execution.base import ExecutionClient, MarketSimulator, ReconcileReport, ReconciliationError
from trader.feeds.base import Event, EventFeed, SkippedBar, event_sort_key
from trader.portfolio import Portfolio, Trade
from trader.risk import AccountExposure, RiskEngine, TradingState
from trader.strategy import Strategy, StrategyContext

log = get_logger(__name__)
DOUBTFUL = frozenset({OrderStatus.SUBMITTED, OrderStatus.UNKNOWN})  # submits whose fate the venue has not told
MAX_UNSETTLED = 3  # unsettled reconciliations in a row before their mismatches count


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
class NodeChanges:
    """What changed since the previous :meth:`TradingNode.drain_changes` (for incremental persistence)."""

    orders: list[Order] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    equity: list[EquityPoint] = field(default_factory=list)
    trades: list[Trade] = field(default_factory=list)


def warmup_bars(strategies: Sequence[Strategy], max_flat_bars: int | None) -> int:
    """Bars before the start a feed must deliver: the strategies' history and the stale-run window."""
    return max([s.history_bars for s in strategies] + [max_flat_bars or 0])


class TradingNode:
    """Routes events to strategies and orders to the venue; keeps the books."""

    def __init__(
        self,
        strategies: Sequence[Strategy],
        risk: RiskEngine,
        client: ExecutionClient,
        portfolio: Portfolio,
        instruments: Sequence[Instrument],
        *,
        clock: SimClock | None = None,
        simulator: MarketSimulator | None = None,
        start_time: datetime | None = None,
        max_flat_bars: int | None = None,
    ) -> None:
        names = [s.name for s in strategies]
        if not strategies or len(set(names)) != len(names):
            raise ConfigError(f"a node needs strategies with unique names (they prefix client order ids): {names}")
        self.strategies = list(strategies)
        self.risk = risk
        self.client = client
        self.simulator = simulator
        self.portfolio = portfolio
        self.instruments = {i.key: i for i in instruments}
        self.clock = clock or SimClock()
        self.start_time = start_time
        self.max_flat_bars = max_flat_bars
        self._by_instrument = {k: [s for s in strategies if k in s.instruments] for k in self.instruments}
        depth = max([s.history_bars for s in strategies] + [risk.config.history_bars, 1])
        risk.instruments = dict(self.instruments)
        self.history: dict[str, deque[Bar]] = {k: deque(maxlen=depth) for k in self.instruments}
        self._stale = {k: StaleTracker(max_flat_bars) for k in self.instruments} if max_flat_bars else {}
        self.orders: dict[str, Order] = {}
        self._owner: dict[str, Strategy] = {}
        self.fills: list[Fill] = []
        self.equity: list[EquityPoint] = []
        self.rejections: list[Rejection] = []
        self.skipped: list[SkippedBar] = []
        self.counts: Counter[str] = Counter()
        self.seen_signals: set[str] = set()
        self.events_processed = 0
        self.last_key: tuple[datetime, int, str, datetime] | None = None
        self._dirty: set[str] = set()
        self._drained = {"fills": 0, "equity": 0, "trades": 0}
        self._started = False
        self._unsettled = 0  # reconciliations in a row whose venue snapshot never settled
        self._stopped: dict[str, datetime] = {}  # instrument -> bar close at which a protective stop fired
        self.initial_equity = portfolio.equity()  # a carried account starts from its snapshot's equity
        self.on_sent: Callable[[Order, Signal | None], None] | None = None  # observer of each order sent (telemetry)
        self._answering: Signal | None = None  # the signal whose orders are being routed
        # read-only views of the instruments and the bar history handed to every StrategyContext (made once)
        self._views: tuple[object, object, MappingProxyType[str, Instrument], MappingProxyType[str, deque[Bar]]] | None
        self._views = None

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Reconcile with the venue; refuse to trade (paper) or halt (a real venue) if it disagrees."""
        if self._started:
            return
        self.reconcile()
        self._started = True
        log.info("node.started", extra={"instruments": sorted(self.instruments), "strategies": self.names})

    def reconcile(self) -> list[str]:
        """Adopt the venue's new fills, then compare its open orders, positions and cash with the books.

        Returns the mismatches. A simulated venue's mismatch raises :class:`ReconciliationError`; a real
        venue's (``halt_on_mismatch``) puts the risk engine in HALTED with the reason. A snapshot that
        never settled (fills kept arriving during every read) gives no verdict, up to
        ``MAX_UNSETTLED`` times in a row: then its mismatches count.
        """
        self.client.poll(self._on_fill)
        report = self.client.reconcile(self._on_fill)
        problems = self._mismatches(report)
        self._unsettled = 0 if report.settled else self._unsettled + 1
        if problems and 0 < self._unsettled < MAX_UNSETTLED:
            log.info("node.reconcile_unsettled", extra={"times": self._unsettled, "problems": problems})
            return []
        if problems and not report.halt_on_mismatch:
            raise ReconciliationError("; ".join(problems))
        if problems:
            reason = "reconciliation: " + "; ".join(problems)
            self.risk.set_state(TradingState.HALTED, self.clock.now(), reason[:500])
        return problems

    def _mismatches(self, report: ReconcileReport) -> list[str]:
        out = []
        ours = {k: p.qty for k, p in self.portfolio.positions.items() if p.qty}
        for key in sorted(set(ours) | set(report.positions)):
            tol = report.tolerance.get(key, 0.0)
            if abs(ours.get(key, 0.0) - report.positions.get(key, 0.0)) > tol:
                out.append(f"venue positions {report.positions} != node positions {ours}")
                break
        for ccy, cash in report.cash.items():
            if abs(cash - self.portfolio.cash) > max(1e-6, 1e-9 * abs(cash)):
                out.append(f"venue cash {ccy} {cash} != node cash {self.portfolio.cash}")
        known = {cid for cid, o in self.orders.items() if o.is_open and self._current(cid).is_open}
        known -= set(report.local_orders)
        # a submit still in doubt (sent just before a crash, within its recvWindow) may or may not be at the venue:
        # no verdict on it either way; the client resolves it by client id on a later poll
        doubtful = {cid for cid in known if self.orders[cid].status in DOUBTFUL}
        known -= doubtful
        venue = {o.client_id for o in report.open_orders} - doubtful
        if venue != known:
            out.append(f"venue open orders {sorted(venue)} != node open orders {sorted(known)}")
        return out

    def _current(self, client_id: str) -> Order:
        """The client's current view of an order (the books' copy if the venue never had it)."""
        with suppress(OrderNotFoundError):
            self.orders[client_id] = self.client.query(client_id)
        return self.orders[client_id]

    def poll_venue(self, bar: Bar | None = None) -> int:
        """Fills a real venue made since the last poll, booked and passed to their strategies."""
        return self.client.poll(self._on_fill, bar)

    def halt(self, reason: str, *, flatten: bool = False) -> list[Order]:
        """HALTED with ``reason``; cancel every open order (cancels always pass) and, with ``flatten``, close
        every position at market (exits pass a halt). Returns the cancelled orders."""
        now = self.clock.now()
        self.risk.set_state(TradingState.HALTED, now, reason)
        out = self._cancel_open(None, now)
        if flatten:
            for key in self.instruments:
                self._close_position(key, "flatten", f"flatten on halt: {reason}"[:200])
        return out

    def _cancel_open(self, instrument_key: str | None, now: datetime) -> list[Order]:
        out = []
        for o in self.client.open_orders(instrument_key):
            done = self.client.cancel(o.client_id, now)
            if done is not None:
                out.append(done)
                if o.client_id in self.orders:
                    self.orders[o.client_id] = done
                self._dirty.add(o.client_id)
        return out

    def _close_position(self, key: str, kind: str, tag: str) -> Order | None:
        """A reduce-only market order closing the position in ``key`` (above dust), through the risk engine."""
        pos, inst = self.portfolio.positions[key], self.instruments[key]
        qty = round_qty(abs(pos.qty), inst.qty_decimals)
        owners = self._by_instrument[key]
        if qty <= 0 or qty < inst.lot or not owners:
            return None
        owner = owners[0]
        side = Side.SELL if pos.qty > 0 else Side.BUY
        intent = OrderIntent.market(owner.next_id(kind), inst, side, qty, reduce_only=True, tag=tag)
        before = len(self.orders)
        self._route(owner, [intent])
        placed = self.orders.get(intent.client_id)
        log.warning("node.close_position", extra={"instrument": key, "qty": qty, "kind": kind,
                                                  "status": str(placed.status) if placed else "none",
                                                  "new_orders": len(self.orders) - before})
        return placed

    def _protect(self, bar: Bar, key: str | None = None, history: Sequence[Bar] | None = None) -> None:
        """The risk engine's protective stop for ``bar``'s instrument: cancel its orders, close at market."""
        key = key if key is not None else bar.instrument_key
        pos, lot = self.portfolio.positions[key], self.instruments[key].lot
        held = pos if abs(pos.qty) >= lot else replace(pos, qty=0.0)
        reason = self.risk.on_bar(bar, held, self.history[key] if history is None else history)
        if reason is None:
            return
        self.counts["protective_stops"] += 1
        self._cancel_open(key, self.clock.now())
        self._close_position(key, "stop", reason[:200])
        self._stopped[key] = bar.close_time

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.strategies]

    @property
    def warmup_bars(self) -> int:
        """See :func:`warmup_bars`."""
        return warmup_bars(self.strategies, self.max_flat_bars)

    def owner_of(self, client_id: str) -> str:
        """The name of the strategy that sent the order ``client_id``."""
        return self._owner[client_id].name

    def adopt(self, order: Order, strategy: Strategy) -> None:
        """Take over an order sent in an earlier run of this account (see :mod:`trader.snapshot`)."""
        if self._started:
            raise ConfigError("orders are adopted before the node starts")
        self.orders[order.client_id] = order
        self._owner[order.client_id] = strategy

    def run(self, feed: EventFeed, *, checkpoint: Callable[[], None] | None = None,
            progress: Callable[[int], None] | None = None) -> None:
        """Process every batch of ``feed``; after each, ``checkpoint`` (persist) and then the feed's commit."""
        self.start()
        for batch in feed.batches():
            for event in batch:
                self.on_event(event)
            if checkpoint is not None:
                checkpoint()
            feed.commit()
            if progress is not None:
                progress(len(batch))

    def on_event(self, event: Event) -> None:
        """Process one event. Events must arrive in :func:`event_sort_key` order."""
        if not self._started:
            self.start()
        key = event_sort_key(event)
        if self.last_key is not None and key <= self.last_key:
            raise DataValidationError("event", key, f"out of order or duplicate (last processed {self.last_key})")
        ikey = key[2]  # the event's instrument key
        if ikey not in self.instruments:
            raise DataValidationError("instrument", ikey, f"not traded by this node ({sorted(self.instruments)})")
        self.last_key = key
        self.events_processed += 1
        if isinstance(event, Signal):
            self._on_signal(event)
            return
        warm = self.start_time is not None and event.open_time < self.start_time
        tracker = self._stale.get(ikey)
        if (tracker is not None and tracker.update(bool(is_flat(event.open, event.high, event.low, event.close,
                                                               event.volume)))
                and isinstance(event, Bar)):
            event = SkippedBar.of(event, (STALE,))
        if isinstance(event, SkippedBar):
            if not warm:
                self.skipped.append(event)
                self.counts["skipped_bars"] += 1
                for reason in event.reasons:
                    self.counts[f"skipped_{reason}"] += 1
            return
        if warm:
            self.history[ikey].append(event)
            self.portfolio.mark(ikey, event.close)
            self.counts["warmup_bars"] += 1
            return
        self._on_bar(event, ikey)

    # --- handlers -------------------------------------------------------------------------
    def _on_signal(self, signal: Signal) -> None:
        if signal.signal_id and signal.signal_id in self.seen_signals:
            self.counts["duplicate_signals"] += 1
            return
        if signal.signal_id:
            self.seen_signals.add(signal.signal_id)
        self.clock.advance(signal.available_time)
        self._answering = signal
        try:
            for s in self._by_instrument[signal.instrument_key]:
                self._route(s, s.on_signal(signal, self._ctx()))
        finally:
            self._answering = None

    def _on_bar(self, bar: Bar, key: str | None = None) -> None:
        on_fill = self._on_fill
        self.client.poll(on_fill, bar)  # a real venue's fills (a simulated venue fills below)
        if self.simulator is not None:
            self.simulator.process_bar(bar, on_fill)
        ts = bar.close_time
        self.clock.advance(ts)
        if key is None:
            key = bar.instrument_key
        p = self.portfolio
        p.mark(key, bar.close)
        equity = p.equity()
        risk = self.risk
        risk.on_equity(equity, ts)
        gross, held = 0.0, 0
        last_prices = p.last_prices
        for k, pos in p.positions.items():
            if pos.qty:
                gross += abs(pos.qty) * last_prices.get(k, pos.avg_price)
                held += 1
        point = EquityPoint(ts, equity, p.cash, gross, held, risk.state.value)
        curve = self.equity
        if curve and curve[-1].ts == ts:
            curve[-1] = point  # another instrument's bar at the same close: one point per instant
            self._drained["equity"] = min(self._drained["equity"], len(curve) - 1)
        else:
            curve.append(point)
        history = self.history[key]
        history.append(bar)
        self._protect(bar, key, history)
        strategies = self._by_instrument[key]
        if strategies:
            ctx = self._ctx()
            for i, s in enumerate(strategies):
                if i:
                    ctx = self._ctx()  # the previous strategy's orders are in the books now
                self._route(s, s.on_bar(bar, ctx))

    def _on_fill(self, fill: Fill) -> None:
        self.clock.catch_up(fill.ts)
        closed = len(self.portfolio.trades)
        self.portfolio.apply(fill)
        for t in self.portfolio.trades[closed:]:
            self.risk.on_trade_closed(fill.instrument_key, t.pnl)
        self.fills.append(fill)
        self._dirty.add(fill.client_id)
        owner = self._owner.get(fill.client_id)
        # OCO siblings cancelled by the venue are refreshed by drain_changes (it re-queries open orders)
        if owner is not None:
            self._route(owner, owner.on_fill(fill, self._ctx()))

    def _ctx(self) -> StrategyContext:
        p = self.portfolio
        if self._views is None or self._views[0] is not self.instruments or self._views[1] is not self.history:
            self._views = (self.instruments, self.history, MappingProxyType(self.instruments),
                           MappingProxyType(self.history))
        # positional, in StrategyContext's field order (keywords cost more on the hot path)
        return StrategyContext(
            self.clock.now(),
            p.cash,
            p.equity(),
            MappingProxyType(p.positions.copy()),
            MappingProxyType(p.last_prices.copy()),
            tuple(self.client.open_orders()),
            self._views[2],
            self._views[3],
        )

    def _route(self, strategy: Strategy, intents: list[OrderIntent]) -> None:
        now = self.clock.now()
        for intent in intents:
            if intent.instrument_key not in strategy.instruments:
                self._reject(intent, now, f"instrument {intent.instrument_key!r} not traded by {strategy.name}")
                continue
            if intent.is_cancel:
                self.client.cancel(intent.client_id, now)
                self._dirty.add(intent.client_id)
                continue
            stopped = self._stopped.get(intent.instrument_key)
            if stopped is not None and stopped == self.history[intent.instrument_key][-1].close_time:
                self._reject(intent, now, f"{intent.symbol}: protective stop on this bar; orders wait for the next")
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
            self._owner[decision.client_id] = strategy
            placed = self.client.submit(decision, now)
            if self.on_sent is not None:
                self.on_sent(placed, self._answering)
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
        venue = instrument_key.partition(":")[0]  # keys are exchange:symbol
        on_venue = sum(v for k, v in notional.items() if k.partition(":")[0] == venue)
        return AccountExposure(p.equity(), sum(notional.values()), len(notional), on_venue)

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

    def drain_changes(self) -> NodeChanges:
        """Orders, fills, equity points and trades new or changed since the last call."""
        dirty = self._dirty | {cid for cid, o in self.orders.items() if o.is_open}
        self._dirty = set()
        orders = [self._refresh(cid) for cid in self.orders if cid in dirty]
        d = self._drained
        changes = NodeChanges(
            orders, self.fills[d["fills"]:], self.equity[d["equity"]:], self.portfolio.trades[d["trades"]:]
        )
        d["fills"], d["equity"], d["trades"] = len(self.fills), len(self.equity), len(self.portfolio.trades)
        return changes
