"""A trading session: the one trading node against a venue, with a live bar feed, until stopped.

Paper and live are two configurations of the same session and node (never a flag inside them):

* ``paper``: the venue's public market data (no keys), fills simulated by the paper venue from the
  bars (:class:`~trader.execution.paper.PaperExecutionClient`), the account carried across restarts as
  an :class:`~trader.snapshot.AccountSnapshot` stored after every bar;
* ``live``: the ccxt execution client (:class:`~trader.execution.ccxt_client.CcxtExecutionClient`) on
  the account's keys, every order transition written ahead in the journal (:mod:`trader.orders`).

A restart rebuilds the account from the journal (cash from the venue balances the account started
with, positions from every adopted fill, strategies' id sequences from the client ids used, the
risk state and halt reason, the open orders), then reconciles: doubtful submits are resolved by client
order id, fills made while the trader was down are adopted, and open orders, positions and cash are
compared with the venue's (a mismatch beyond the market's precision halts with the reason). Bars are
processed at most once: the last bar's time is stored *before* the node trades on it, so a crash in
the middle of a bar never lets the restarted trader act on that bar again.

With a stage sink (``stages``: ``ops.bar_stages`` through :class:`~trader.stages.DeltaStages`), each order the
node sends while processing a bar is stamped ``order`` for that bar (:class:`~trader.stages.OrderStages`,
the same stamps as the Kafka-fed trader's, observed as bar close -> order sent in ``/metrics``); the stamps
are appended between loops, at most every ``stamp_every_s`` and at the stop, never on the order's path.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cryptolake.errors import ConfigError, CryptolakeError
from cryptolake.logs import get_logger
from cryptolake.stages import StageSink
from cryptolake.types import to_ms
from trader.clock import SimClock
from trader.config import TraderConfig
from trader.domain import Bar, Instrument, OrderStatus, timeframe_delta
from trader.execution.base import ExecutionClient
from trader.execution.ccxt_client import (
    CcxtExecutionClient,
    CcxtVenueConfig,
    ccxt_call,
    make_ccxt,
    market_instruments,
)
from trader.execution.paper import PaperConfig, PaperExecutionClient
from trader.feeds.base import SkippedBar
from trader.feeds.ccxt_feed import CcxtBarFeed, WsBarFeed
from trader.killswitch import KillSwitchConfig, KillSwitches
from trader.node import TradingNode
from trader.notify import PAUSED, SessionAlerts, apply_controls
from trader.orders import OrderJournal
from trader.portfolio import Portfolio
from trader.risk import RiskEngine, TradingState
from trader.snapshot import AccountSnapshot, restore, take_snapshot
from trader.stages import OrderStages
from trader.store import TradeStore
from trader.strategies.registry import build_strategy
from trader.strategy import Strategy
from trader.telemetry import TraderMetrics

log = get_logger(__name__)


class SessionConfig(BaseModel):
    """How a session runs (what it trades is the :class:`~trader.config.TraderConfig`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account_id: str = Field(min_length=1, max_length=128, description="Names the account's journal")
    mode: Literal["paper", "live"] = "paper"
    venue: CcxtVenueConfig = CcxtVenueConfig()
    poll_interval_s: float = Field(default=1.0, gt=0, description="Loop period: bars, fills, kill switches")
    reconcile_interval_s: float = Field(default=60.0, gt=0)
    kill: KillSwitchConfig = KillSwitchConfig()
    cancel_on_stop: bool = Field(default=False, description="Cancel open orders on SIGTERM (else they rest)")
    unknown_orders: Literal["report", "adopt", "cancel"] = Field(
        default="report", description="Venue orders the journal does not know: report (and halt), adopt, cancel")
    metrics_port: int | None = Field(default=None, ge=0, le=65535, description="Serve /metrics here")
    max_bars: int | None = Field(default=None, ge=1, description="Stop after this many traded bars")
    bar_feed: Literal["rest", "ws"] = Field(
        default="rest", description="Live bars: REST fetch_ohlcv polling, or ccxt.pro watch_ohlcv (websocket)")


class WallClock(SimClock):
    """A live node's clock: the wall time (orders are stamped when they are sent, fills when they happen)."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def advance(self, ts: datetime) -> None:
        return None

    def catch_up(self, ts: datetime) -> None:
        return None


class TradingSession:
    """Builds the node of ``trader`` + ``config``, restores the account, runs until stopped.

    ``stages``: where the ``order`` stamp of each order sent on a bar goes (None: stamps are counted and observed
    in ``/metrics`` only); ``stamp_every_s``: seconds between appends; ``stamp_clock``: the wall clock of stamps.
    """

    def __init__(self, trader: TraderConfig, config: SessionConfig, store: TradeStore, *,
                 exchange: Any = None, stages: StageSink | None = None, stamp_every_s: float = 2.0,
                 stamp_clock: Callable[[], float] = time.time) -> None:
        if trader.venues:  # one ccxt connection, feed and balance: other venues would be silently ignored
            raise ConfigError(f"a trading session trades one venue ({config.venue.venue}); venues="
                              f"{dict(trader.venues)} runs in backtests and the Kafka-fed paper trader only")
        self.trader, self.config = trader, config
        self.journal = OrderJournal(store, config.account_id)
        live = config.mode == "live"
        self.exchange = exchange if exchange is not None else make_ccxt(config.venue, require_keys=live)
        symbols = list(trader.symbols)
        self.client: ExecutionClient
        call_venue: Callable[[str, Callable[[], Any]], Any]
        if live:
            self.client = ccxt = CcxtExecutionClient(config.venue, symbols, self.journal, exchange=self.exchange)
            instruments, call_venue = ccxt.instruments, ccxt.call
        else:
            instruments = market_instruments(self.exchange, config.venue.venue, symbols)
            paper = PaperConfig(**{**trader.paper.model_dump(), "fee_currency": self._quote(instruments)})
            self.client = PaperExecutionClient(paper, instruments)
            policy = config.venue.policy()

            def call_venue(what: str, fn: Callable[[], Any]) -> Any:  # type: ignore[misc]
                return ccxt_call(self.exchange, what, fn, policy)
        self.instruments = instruments
        self.strategies = _strategies(trader, instruments)
        self.node = TradingNode(self.strategies, RiskEngine(trader.risk), self.client,
                                Portfolio(trader.initial_cash, instruments), instruments,
                                clock=WallClock() if live else SimClock(),
                                simulator=None if live else self.client,  # type: ignore[arg-type]
                                max_flat_bars=trader.max_flat_bars)
        feed_args: dict[str, Any] = {"after_ms": self.journal.get("last_bar_ms"),
                                     "warmup_bars": self.node.warmup_bars, "call": call_venue}
        self.feed = (WsBarFeed(make_ccxt(config.venue, require_keys=False, pro=True), self.exchange,
                               config.venue.venue, symbols, trader.timeframe, **feed_args)
                     if config.bar_feed == "ws" else
                     CcxtBarFeed(self.exchange, config.venue.venue, symbols, trader.timeframe, **feed_args))
        self.kill = KillSwitches(config.kill, config.kill.bar_interval_s or timeframe_delta(trader.timeframe)
                                 .total_seconds())
        self.metrics = TraderMetrics(config.account_id)
        self.order_stages = OrderStages(stages, every_s=stamp_every_s, clock=stamp_clock, metrics=self.metrics)
        self.node.on_sent = self.order_stages.on_sent
        self.alerts = SessionAlerts.from_environment(config.account_id)
        self._params: dict[str, Any] = {}
        self.bars_traded = 0
        self._orders_seen: set[str] = set()
        self._halt_enforced = False
        self._fill_latencies_seen = 0
        self.metrics_port: int | None = None  # the port /metrics is served on, once started
        self._stop = threading.Event()

    @staticmethod
    def _quote(instruments: list[Instrument]) -> str:
        return instruments[0].symbol.split("/")[1]

    # --- restoring the account -----------------------------------------------------------
    def _restore(self) -> None:
        node, j = self.node, self.journal
        by_name = {s.name: s for s in self.strategies}
        raw = j.get("risk")
        if raw:
            node.risk.load_state(raw)
            if node.risk.state is TradingState.HALTED:
                node.risk.transitions.append((datetime.now(UTC), TradingState.HALTED, j.get("halt_reason", "")))
        if isinstance(self.client, PaperExecutionClient):
            snap = j.get("paper_snapshot")
            if snap and node.start_time is not None:
                restore(node, AccountSnapshot.from_json(snap))
            return
        assert isinstance(self.client, CcxtExecutionClient)
        baseline = j.get("baseline")
        if baseline is None:
            bal = self.client.balances()
            baseline = {a: bal.get(a, 0.0) for m in self.client.markets.values() for a in (m["base"], m["quote"])}
            j.put(baseline=baseline)
        p = node.portfolio
        p.initial_cash = p.cash = float(baseline[self._quote(self.instruments)])
        for f in j.fills():
            p.apply(f)
            node.fills.append(f)
        for cid in j.orders:
            name, _, rest = cid.partition("-")
            if name in by_name and rest[:6].isdigit():
                by_name[name].seq = max(by_name[name].seq, int(rest[:6]))
        for o in j.open_orders():
            owner = by_name.get(j.owners.get(o.client_id, ""), self.strategies[0])
            node.adopt(o, owner)
        node.initial_equity = p.initial_cash
        self._orders_seen = set(j.orders)

    def _foreign_orders(self) -> None:
        assert isinstance(self.client, CcxtExecutionClient)
        for o in self.client.reconcile().open_orders:
            if o.tag != "foreign":
                continue
            log.warning("session.foreign_order", extra={"client_id": o.client_id, "symbol": o.symbol,
                                                        "policy": self.config.unknown_orders})
            if self.config.unknown_orders == "cancel":
                self.client.call("cancel_order", partial(self.exchange.cancel_order, o.id, o.symbol))
            elif self.config.unknown_orders == "adopt":
                adopted = self.journal.record(o, OrderStatus.ACCEPTED, o.created_at, owner=self.strategies[0].name,
                                              reason="adopted: unknown to this account's journal")
                self.node.adopt(adopted, self.strategies[0])

    # --- running ---------------------------------------------------------------------------
    def start(self) -> None:
        """Restore, reconcile and warm up: after this the session trades on every new bar."""
        first = self._wait_bars()
        self.node.start_time = self.feed.start_time
        self._restore()
        if isinstance(self.client, CcxtExecutionClient):
            self._foreign_orders()
        self.node.start()
        self.journal.put(strategies=[{"name": s.name, "config": s.config.model_dump(mode="json")}
                                     for s in self.strategies])
        self._params = apply_controls(self.node, self.journal, self.strategies, {})
        self.alerts.baseline(self.node)
        if self.node.risk.state is TradingState.HALTED:
            self._enforce_halt(self.node.risk.halt_reason)  # a halt found at start cancels what rests at the venue
        self._process(first)
        self._persist()
        if self.config.metrics_port is not None:
            self.metrics_port = self.metrics.serve(self.config.metrics_port)

    def _wait_bars(self) -> list[Any]:
        while not self._stop.is_set():
            bars = self.feed.poll()
            if bars:
                return bars
            self._stop.wait(self.config.poll_interval_s)
        return []

    def run(self, stop: threading.Event, status: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Trade until ``stop`` is set (SIGTERM, Ctrl-C) or ``max_bars``; state persisted; returns the status."""
        self._stop = stop
        self.start()
        next_reconcile = time.monotonic() + self.config.reconcile_interval_s
        while not stop.is_set():
            if self.config.max_bars is not None and self.bars_traded >= self.config.max_bars:
                break
            try:
                self.step()
                self.order_stages.maybe_flush()  # between loops, never on the order's path
                if time.monotonic() >= next_reconcile:
                    next_reconcile = time.monotonic() + self.config.reconcile_interval_s
                    if self.node.reconcile() and self.node.risk.state is TradingState.HALTED:
                        self._enforce_halt(self.node.risk.halt_reason)
            except CryptolakeError as exc:  # a venue outage must not kill the trader; the switches watch it
                log.warning("session.step_failed", extra={"error": str(exc), "error_type": type(exc).__name__})
            self._persist()
            if status is not None:
                status(self.status())
            stop.wait(self.config.poll_interval_s)
        return self.stop()

    def step(self) -> None:
        """One loop: new bars, venue fills, the kill switches and the operator's kill/reset."""
        self._process(self.feed.poll())
        if isinstance(self.client, CcxtExecutionClient):
            self.node.poll_venue()
        self._params = apply_controls(self.node, self.journal, self.strategies, self._params)  # pause, flatten
        self._check_switches()
        self.alerts.check(self.node)

    def _process(self, events: list[Any]) -> None:
        for ev in events:
            if self._stop.is_set() or (self.config.max_bars is not None and self.bars_traded >= self.config.max_bars):
                break  # no new orders once asked to stop; the rest of the bars come again at the next start
            traded = self.node.start_time is None or ev.open_time >= self.node.start_time
            if traded:
                self.journal.put(last_bar_ms=to_ms(ev.open_time))  # at most once: stored before trading on it
            t0, marks, acks = time.perf_counter(), len(self._sent()), len(self._acks())
            self.order_stages.answering(ev if traded and isinstance(ev, Bar) else None)
            try:
                self.node.on_event(ev)
            finally:
                self.order_stages.answering(None)
            for mark in self._sent()[marks:]:
                self.metrics.signal_to_sent.labels(self.config.account_id).observe(mark - t0)
            for ack in self._acks()[acks:]:
                self.metrics.sent_to_ack.labels(self.config.account_id).observe(ack)
            if traded and not isinstance(ev, SkippedBar):
                self.bars_traded += 1
                self.kill.on_bar()
        if events:
            self._count_orders()

    def _sent(self) -> list[float]:
        return self.client.sent_marks if isinstance(self.client, CcxtExecutionClient) else []

    def _acks(self) -> list[float]:
        return self.client.ack_latency_s if isinstance(self.client, CcxtExecutionClient) else []

    def _count_orders(self) -> None:
        for cid, o in self.node.orders.items():
            if cid not in self._orders_seen:
                self._orders_seen.add(cid)
                self.kill.on_order(o.status in (OrderStatus.REJECTED, OrderStatus.UNKNOWN))  # not accepted

    def _check_switches(self) -> None:
        node, j = self.node, self.journal
        if j.get("reset"):
            node.risk.set_state(TradingState.ACTIVE, node.clock.now(), f"reset by operator: {j.get('reset')}")
            j.put(reset=None, kill=None, halt_reason="")
            self.kill.on_bar()
            self._halt_enforced = False
        if node.risk.state is TradingState.HALTED:
            if not self._halt_enforced:  # the risk engine's own halt (drawdown) during the last bars
                self._enforce_halt(node.risk.halt_reason)
            return
        manual = j.get("kill")
        errors = self.client.consecutive_errors if isinstance(self.client, CcxtExecutionClient) else 0
        day = node.risk.state_dict().get("day_start_equity")
        day_loss = 1 - node.portfolio.equity() / float(str(day)) if day else None
        reason = f"manual kill: {manual}" if manual else self.kill.check(consecutive_venue_errors=errors,
                                                                          day_loss=day_loss)
        if reason is not None:
            self._enforce_halt(reason)
            self._persist()

    def _enforce_halt(self, reason: str) -> None:
        """HALTED: cancel every open order; close every position too with ``flatten_on_halt``, except when
        the halt is a reconciliation mismatch (the books disagree with the venue: a person decides). A pause
        (:func:`trader.notify.apply_controls`) is a halt that keeps what rests at the venue."""
        if reason.startswith(PAUSED):
            self._halt_enforced = True
            return
        flatten = self.config.kill.flatten_on_halt and not reason.startswith("reconciliation")
        cancelled = self.node.halt(reason, flatten=flatten)
        self._halt_enforced = True
        log.warning("session.halted", extra={"reason": reason, "cancelled": len(cancelled), "flatten": flatten})

    def _persist(self) -> None:
        risk = self.node.risk
        values: dict[str, Any] = {"risk": risk.state_dict(), "halt_reason": risk.halt_reason}
        if isinstance(self.client, PaperExecutionClient) and self.node.equity:
            values["paper_snapshot"] = take_snapshot(self.node, self.node.equity[-1].ts).to_json()
        self.journal.put(**values)
        m = self.node.portfolio
        gross = sum(abs(p.qty) * m.last_prices.get(k, p.avg_price) for k, p in m.positions.items())
        errors = self.client.consecutive_errors if isinstance(self.client, CcxtExecutionClient) else 0
        if isinstance(self.client, CcxtExecutionClient):
            for lat in self.client.fill_latency_s[self._fill_latencies_seen:]:
                self.metrics.ack_to_fill.labels(self.config.account_id).observe(lat)
            self._fill_latencies_seen = len(self.client.fill_latency_s)
        self.metrics.update(self.node.orders.values(), len(self.node.fills), m.equity(), gross, risk.state, errors)

    def status(self) -> dict[str, Any]:
        p = self.node.portfolio
        return {"account": self.config.account_id, "mode": self.config.mode, "state": str(self.node.risk.state),
                "halt_reason": self.node.risk.halt_reason, "bars": self.bars_traded, "fills": len(self.node.fills),
                "open_orders": len(self.client.open_orders()), "equity": round(p.equity(), 2),
                "positions": {k: v.qty for k, v in p.positions.items() if v.qty}}

    def stop(self) -> dict[str, Any]:
        """No new orders; open orders cancelled (``cancel_on_stop``) or left resting; state persisted."""
        if self.config.cancel_on_stop:
            now = self.node.clock.now()
            for o in self.client.open_orders():
                self.client.cancel(o.client_id, now)
        self._persist()
        try:
            self.order_stages.flush()
        except CryptolakeError as exc:  # the last unwritten stamps are lost, never the stop
            log.warning("session.order_stages_lost", extra={"rows": self.order_stages.pending, "error": str(exc)})
        self.metrics.close()
        if isinstance(self.feed, WsBarFeed):
            self.feed.close()
        if isinstance(self.client, CcxtExecutionClient):
            self.client.close()
        log.info("session.stopped", extra=self.status())
        return self.status()


def _strategies(trader: TraderConfig, instruments: list[Instrument]) -> list[Strategy]:
    return [build_strategy(spec, [i for i in instruments if spec.symbols is None or i.symbol in spec.symbols])
            for spec in trader.strategies]
