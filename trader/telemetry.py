"""Prometheus metrics of a running trader (prometheus-client), served on ``/metrics``.

One :class:`TraderMetrics` per session, on its own registry (several sessions in one process, as in
tests, never collide). The session updates it after every loop: orders by state, fills, rejects,
latency histograms (signal to order sent: from the event's arrival; bar close to order sent, for
orders answering a signal (:class:`trader.stages.OrderStages`), or the bar a ccxt session sent them on
(:class:`trader.session.TradingSession`); sent to acknowledged; acknowledged to
filled: the venue's acknowledgement to the fill being booked), equity, gross exposure and the risk
state (1 for the current state, 0 for the others).
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from cryptolake.metrics import MetricsServer
from trader.domain import Order, OrderStatus
from trader.risk import TradingState

_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class TraderMetrics:
    """The trader's series, labelled by account."""

    def __init__(self, account: str) -> None:
        self.registry = CollectorRegistry()
        self.account = account
        r, a = self.registry, ["account"]
        self.orders = Gauge("cryptolake_trader_orders", "Orders by state", [*a, "state"], registry=r)
        self.fills = Counter("cryptolake_trader_fills", "Fills booked", a, registry=r)
        self.rejects = Counter("cryptolake_trader_rejects", "Orders rejected (risk, local checks or venue)", a,
                               registry=r)
        self.signal_to_sent = Histogram("cryptolake_trader_signal_to_sent_seconds", "Event in to order sent", a,
                                        buckets=_BUCKETS, registry=r)
        self.close_to_sent = Histogram("cryptolake_trader_close_to_sent_seconds",
                                       "Venue bar close to the order sent in answer to its signal", a,
                                       buckets=(*_BUCKETS, 30.0, 60.0, 300.0, 3600.0), registry=r)
        self.sent_to_ack = Histogram("cryptolake_trader_sent_to_ack_seconds", "Order sent to venue acknowledgement",
                                     a, buckets=_BUCKETS, registry=r)
        self.ack_to_fill = Histogram("cryptolake_trader_ack_to_fill_seconds",
                                     "Venue acknowledgement to the fill booked by the trader", a,
                                     buckets=(*_BUCKETS, 30.0, 60.0, 300.0), registry=r)
        self.equity = Gauge("cryptolake_trader_equity", "Account equity (quote currency)", a, registry=r)
        self.exposure = Gauge("cryptolake_trader_gross_exposure", "Gross position notional", a, registry=r)
        self.risk_state = Gauge("cryptolake_trader_risk_state", "1 for the current risk state", [*a, "state"],
                                registry=r)
        self.venue_errors = Gauge("cryptolake_trader_consecutive_venue_errors", "Venue errors in a row", a,
                                  registry=r)
        self._fills_seen = 0
        self._rejects_seen = 0
        self._server = MetricsServer(r)

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` on ``host:port`` (a daemon thread; port 0 picks a free one); returns the port."""
        return self._server.start(port, host)

    def close(self) -> None:
        """Stop serving ``/metrics`` (the session's stop)."""
        self._server.close()

    def update(self, orders: Iterable[Order], fills: int, equity: float, exposure: float, state: TradingState,
               consecutive_errors: int = 0) -> None:
        acc = self.account
        by_state = Tally(str(o.status) for o in orders)
        for st in OrderStatus:
            self.orders.labels(acc, str(st)).set(by_state.get(str(st), 0))
        rejects = by_state.get(str(OrderStatus.REJECTED), 0)
        self.fills.labels(acc).inc(max(0, fills - self._fills_seen))
        self.rejects.labels(acc).inc(max(0, rejects - self._rejects_seen))
        self._fills_seen, self._rejects_seen = max(fills, self._fills_seen), max(rejects, self._rejects_seen)
        self.equity.labels(acc).set(equity)
        self.exposure.labels(acc).set(exposure)
        for rs in TradingState:
            self.risk_state.labels(acc, str(rs)).set(1.0 if rs is state else 0.0)
        self.venue_errors.labels(acc).set(consecutive_errors)
