"""The trader's ``order`` stage in ``ops.bar_stages``, and the delta-rs writer of stage stamps.

An order the node sends in answer to a signal is stamped ``order`` for that signal's bar (exchange,
symbol, timeframe, ts = the bar's open time, the key of every stage) at the wall time it was sent:
:class:`OrderStages` is the node's ``on_sent`` observer. In the Kafka-fed trader, orders the node sends
on a bar or a fill (protective stops, a strategy's bar rule) answer no signal and are not stamped. A
bar-driven session (:class:`trader.session.TradingSession`: no signals, bars straight from the venue)
says which bar it is processing (:meth:`OrderStages.answering`): every order sent while the node
processes that bar (its strategies' bar rule, or an order on a fill the bar caused) answers it and is
stamped for that bar; orders sent between bars (an operator's flatten, a halt, fills polled from the
venue) answer no bar and are not stamped. Several orders on one bar are one row, the first's. The stamps are
buffered and appended at most every ``every_s`` seconds, between batches, never on the order's own
path (one delta-rs commit each); a rerun of a run stamps its orders again and readers take the first
stamp of each (bar, stage). :mod:`pipeline.latency` reports them.

:class:`DeltaStages` appends stamps with delta-rs (no JVM): the trader's and the hot path's
(:mod:`pipeline.hot_stream`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from cryptolake.errors import InfrastructureError
from cryptolake.logs import get_logger
from cryptolake.settings import Settings
from cryptolake.stages import StageSink, stage_rows
from cryptolake.tables import BAR_STAGES
from trader.domain import Candle, Order, Signal, timeframe_delta
from trader.telemetry import TraderMetrics

log = get_logger(__name__)
ORDER_STAGE = "order"


class DeltaStages:
    """Appends stage rows to ``ops.bar_stages`` with delta-rs (no JVM; the table is created at start if missing,
    so the first append is not also a table creation)."""

    def __init__(self, settings: Settings) -> None:
        from deltalake import DeltaTable
        from deltalake.exceptions import DeltaError

        from cryptolake.duck import delta_storage_options, duck_uri
        from trader.export import arrow_schema

        self.settings = settings
        path = BAR_STAGES.path(settings)
        try:
            DeltaTable.create(duck_uri(path), schema=arrow_schema(BAR_STAGES), mode="ignore",
                              partition_by=list(BAR_STAGES.partition_by), description=BAR_STAGES.description,
                              storage_options=delta_storage_options(settings) or None)
        except (DeltaError, OSError) as exc:
            raise InfrastructureError(f"creating {BAR_STAGES.name} at {path}: {exc}") from exc

    def append(self, rows: pd.DataFrame) -> None:
        from deltalake import write_deltalake
        from deltalake.exceptions import DeltaError

        from cryptolake.duck import delta_storage_options, duck_uri
        from trader.export import to_arrow

        path = BAR_STAGES.path(self.settings)
        try:
            write_deltalake(duck_uri(path), to_arrow(rows, BAR_STAGES), mode="append",
                            partition_by=list(BAR_STAGES.partition_by),
                            storage_options=delta_storage_options(self.settings) or None,
                            description=BAR_STAGES.description)
        except (DeltaError, OSError) as exc:
            raise InfrastructureError(f"appending {len(rows)} rows to {BAR_STAGES.name} at {path}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class OrderStamp:
    """One order sent in answer to a signal: the signal's bar key and when the order was sent (epoch seconds)."""

    exchange: str
    symbol: str
    timeframe: str
    ts: datetime
    sent_at: float
    client_id: str


class OrderStages:
    """Stamps ``order`` for every order sent in answer to a signal; :meth:`maybe_flush` between batches.

    ``sink`` None: stamps are only counted and observed. An order sent with no signal is stamped for the bar
    given to :meth:`answering` (a bar-driven session), if any. ``metrics``: each stamp is observed as bar close ->
    order sent and, with ``since_received`` (seconds since the signal's record was received, by signal id;
    :meth:`trader.feeds.kafka.KafkaFeed.since_received`), as signal received -> order sent.
    """

    def __init__(self, sink: StageSink | None, *, every_s: float = 2.0, clock: Callable[[], float] = time.time,
                 metrics: TraderMetrics | None = None,
                 since_received: Callable[[str], float | None] | None = None) -> None:
        if every_s < 0:
            raise ValueError(f"every_s must be >= 0, got {every_s}")
        self.sink, self.every_s, self.clock = sink, every_s, clock
        self.metrics, self.since_received = metrics, since_received
        self.stamped = 0  # orders stamped (written or buffered)
        self.written = 0  # rows appended (one per bar: a bar's first order)
        self._buffer: list[OrderStamp] = []
        self._flushed_at = clock()
        self._bar: Candle | None = None

    def answering(self, bar: Candle | None) -> None:
        """A bar-driven session: orders sent with no signal from now on answer ``bar`` (None: no bar)."""
        self._bar = bar

    def on_sent(self, order: Order, signal: Signal | None) -> None:
        """The node's observer: buffer the stamp of an order answering ``signal``, or else the bar given to
        :meth:`answering` (nothing for other orders)."""
        if signal is not None:
            ex, sym, tf, ts = signal.exchange, signal.symbol, signal.timeframe, signal.bar_time
        elif self._bar is not None:
            bar = self._bar
            ex, sym, tf, ts = bar.exchange, bar.symbol, bar.timeframe, bar.open_time
        else:
            return
        sent_at = self.clock()
        self._buffer.append(OrderStamp(ex, sym, tf, ts, sent_at, order.client_id))
        self.stamped += 1
        if self.metrics is not None:
            acc = self.metrics.account
            close = (ts + timeframe_delta(tf)).timestamp()
            self.metrics.close_to_sent.labels(acc).observe(max(0.0, sent_at - close))
            received = (self.since_received(signal.signal_id)
                        if signal is not None and self.since_received and signal.signal_id else None)
            if received is not None:
                self.metrics.signal_to_sent.labels(acc).observe(received)

    @property
    def pending(self) -> int:
        """Stamps buffered, not yet appended."""
        return len(self._buffer)

    def rows(self, stamps: list[OrderStamp]) -> pd.DataFrame:
        """``stamps`` as ``ops.bar_stages`` rows: one per bar, its first order's (several orders sent on one bar or
        signal are one bar's ``order`` stage; an append may not repeat a key)."""
        keys = pd.DataFrame([(s.exchange, s.symbol, s.timeframe, s.ts, s.sent_at) for s in stamps],
                            columns=["exchange", "symbol", "timeframe", "ts", "sent_at"])
        keys = keys.sort_values("sent_at", kind="stable").drop_duplicates(["exchange", "symbol", "timeframe", "ts"])
        return stage_rows(keys.reset_index(drop=True), ORDER_STAGE,
                          pd.Series(pd.to_datetime(keys["sent_at"].to_numpy(), unit="s", utc=True)))

    def maybe_flush(self) -> None:
        """Append the buffered stamps if ``every_s`` has passed since the last append (one commit)."""
        if self.pending and self.clock() - self._flushed_at >= self.every_s:
            self.flush()

    def flush(self) -> None:
        """Append every buffered stamp now (one commit; nothing when none is buffered)."""
        self._flushed_at = self.clock()
        if not self._buffer:
            return
        if self.sink is not None:
            rows = self.rows(self._buffer)
            self.sink.append(rows)  # a failed append keeps the buffer
            self.written += len(rows)
            log.info("trader.order_stages", extra={"rows": len(rows), "orders": len(self._buffer),
                                                   "written": self.written})
        self._buffer = []
