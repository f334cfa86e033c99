"""Order-book metrics and tickers streamed from a venue: ccxt.pro websockets where the venue has them.

* :class:`BookStream`: ``watch_order_book`` (ccxt.pro keeps the book from a REST snapshot plus
  sequence-checked diffs; on Binance a ``U``/``u`` gap raises ``InvalidNonce`` and the book is
  rebuilt, counted here as a resync) -> one :class:`~cryptolake.schemas.BookMetricsV1` per
  interval, stamped with the interval end on the venue's clock (the book's own timestamps, never
  the local wall clock), so replayed and live data give the same records.
* :class:`TickerStream`: ``watch_ticker`` where ``has['watchTicker']``, REST polling where not
  (capability data, not venue names); one :class:`~cryptolake.schemas.TickerV1` per change.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from cryptolake import errors
from cryptolake.logs import get_logger
from cryptolake.schemas import BookMetricsV1, TickerV1
from cryptolake.tables import BOOK_LEVELS
from ingest.exchange.ccxt_compat import translate
from ingest.exchange.connector import Sink, VenueClient, VenueConfig, make_exchange, ticker_message
from ingest.exchange.orderbook import BookMetrics, OrderBook, book_metrics

log = get_logger(__name__)


def book_metrics_message(venue: str, symbol: str, metrics: BookMetrics, *, interval_end_ms: int,
                         last_update_id: int, updates: int, resyncs: int, ingest_ms: int) -> BookMetricsV1:
    """The Kafka record of one interval's closing book (``event_time`` = ``available_time`` = interval end)."""
    return BookMetricsV1(
        schema_version=1, event_time=interval_end_ms, available_time=interval_end_ms, ingest_time=ingest_ms,
        exchange=venue, symbol=symbol, last_update_id=last_update_id, best_bid=metrics.best_bid,
        best_ask=metrics.best_ask, mid=metrics.mid, spread=metrics.spread, spread_bps=metrics.spread_bps,
        microprice=metrics.microprice, depth_bid={str(k): v for k, v in metrics.depth_bid.items()},
        depth_ask={str(k): v for k, v in metrics.depth_ask.items()},
        imbalance={str(k): v for k, v in metrics.imbalance.items()}, updates=updates, resyncs=resyncs)


class BookStream:
    """Book metrics of one symbol per ``interval_ms`` from ccxt.pro ``watch_order_book``.

    The metrics of an interval are those of the last book state inside it; they are published
    when the first update of a later interval arrives (the interval is then closed).
    """

    def __init__(self, config: VenueConfig, symbol: str, sink: Sink, *, interval_ms: int = 1000,
                 levels: Sequence[int] = BOOK_LEVELS, exchange: Any = None) -> None:
        if interval_ms <= 0:
            raise errors.DataValidationError("interval_ms", interval_ms, "must be a positive number of ms")
        self.config = config
        self.symbol = symbol
        self.sink = sink
        self.interval_ms = interval_ms
        self.levels = tuple(levels)
        self.exchange = exchange if exchange is not None else make_exchange(config, asynchronous=True)
        self.published = 0
        self.updates_seen = 0
        self.untimed = 0
        self.resyncs = 0
        self._bucket: int | None = None
        self._book: OrderBook | None = None
        self._updates = 0
        self._resyncs_in_bucket = 0
        self._last_nonce: int | None = None

    def _close(self, ingest_ms: int) -> None:
        if self._book is None or self._bucket is None or self._book.last_update_id is None:
            return
        if not self._book.bids or not self._book.asks or self._book.is_crossed():
            # Never publish a one-sided or crossed book: say so instead.
            log.warning("book.interval_skipped", extra={"venue": self.config.venue, "symbol": self.symbol,
                                                        "interval_end": (self._bucket + 1) * self.interval_ms,
                                                        "reason": "one-sided or crossed book"})
            return
        metrics = book_metrics(self._book, self.levels)
        self.sink(book_metrics_message(self.config.venue, self.symbol, metrics,
                                       interval_end_ms=(self._bucket + 1) * self.interval_ms,
                                       last_update_id=self._book.last_update_id, updates=self._updates,
                                       resyncs=self._resyncs_in_bucket, ingest_ms=ingest_ms))
        self.published += 1

    def on_book(self, ob: dict[str, Any], ingest_ms: int) -> None:
        """Feed one ccxt order book (unified structure with ``timestamp`` and ``nonce``)."""
        ts = ob.get("timestamp")
        nonce = ob.get("nonce")
        if nonce is None:
            raise errors.DataValidationError("nonce", None, f"{self.config.venue} {self.symbol}: book without "
                                                            f"an update id")
        if ts is None:
            # A bare REST snapshot carries no venue time: it cannot be placed in an interval;
            # the first diff applied on top of it does.
            self.untimed += 1
            log.info("book.untimed_snapshot", extra={"venue": self.config.venue, "symbol": self.symbol,
                                                     "nonce": nonce})
            return
        if self._last_nonce is not None and int(nonce) == self._last_nonce:
            return  # the same book state handed out again
        bucket = int(ts) // self.interval_ms
        if self._bucket is not None and bucket > self._bucket:
            self._close(ingest_ms)
            self._updates = 0
            self._resyncs_in_bucket = 0
        if self._bucket is None or bucket >= self._bucket:
            self._bucket = bucket
        deepest = max(self.levels)
        book = OrderBook(self.symbol)
        book.load_snapshot(int(nonce), [lv[:2] for lv in ob["bids"][:deepest]],
                           [lv[:2] for lv in ob["asks"][:deepest]])
        book.event_time = int(ts)
        self._book = book
        self._last_nonce = int(nonce)
        self._updates += 1
        self.updates_seen += 1

    async def run(self, stop: asyncio.Event, max_intervals: int | None = None) -> None:
        """Stream until ``stop`` is set or ``max_intervals`` metrics were published."""
        if not self.exchange.has.get("watchOrderBook"):
            raise errors.ConfigError(f"{self.config.venue} has no websocket order book (has['watchOrderBook'])")
        while not stop.is_set() and (max_intervals is None or self.published < max_intervals):
            try:
                ob = await self.exchange.watch_order_book(self.symbol)
            except Exception as exc:  # a sequence gap or a dropped socket: ccxt rebuilds the book
                err = translate(exc, f"{self.config.venue} watch_order_book", self.exchange)
                if not isinstance(err, errors.RetryableError):
                    raise err from exc
                self.resyncs += 1
                self._resyncs_in_bucket += 1
                log.warning("book.resync", extra={"venue": self.config.venue, "symbol": self.symbol,
                                                  "error": str(err), "resyncs": self.resyncs})
                await asyncio.sleep(min(1.0, self.config.base_delay_s))
                continue
            self.on_book(ob, int(time.time() * 1000))


class TickerStream:
    """Tickers of one symbol: ``watch_ticker`` where the venue has it, REST polling where not."""

    def __init__(self, config: VenueConfig, symbol: str, sink: Sink, *, exchange: Any = None,
                 rest: VenueClient | None = None) -> None:
        self.config = config
        self.symbol = symbol
        self.sink = sink
        self.exchange = exchange if exchange is not None else make_exchange(config, asynchronous=True)
        self.rest = rest
        self.published = 0
        self.reconnects = 0
        self._last: tuple[Any, ...] | None = None

    def _emit(self, t: dict[str, Any]) -> TickerV1 | None:
        state = (t.get("timestamp"), t.get("bid"), t.get("ask"), t.get("last"))
        if state == self._last:
            return None
        self._last = state
        msg = ticker_message(self.config.venue, self.symbol, t)
        self.sink(msg)
        self.published += 1
        return msg

    def _poll(self, rest: VenueClient) -> dict[str, Any]:
        return dict(rest.call("fetch_ticker", lambda: rest.exchange.fetch_ticker(self.symbol)))

    @property
    def uses_websocket(self) -> bool:
        return bool(self.exchange.has.get("watchTicker"))

    async def run(self, stop: asyncio.Event, max_tickers: int | None = None) -> None:
        """Stream until ``stop`` is set or ``max_tickers`` tickers were published."""
        while not stop.is_set() and (max_tickers is None or self.published < max_tickers):
            if not self.uses_websocket:
                if self.rest is None:
                    self.rest = VenueClient(self.config)
                self._emit(dict(await asyncio.to_thread(self._poll, self.rest)))
                await asyncio.sleep(self.config.poll_interval_s)
                continue
            try:
                t = await self.exchange.watch_ticker(self.symbol)
            except Exception as exc:  # a dropped socket is retried; anything else raises
                err = translate(exc, f"{self.config.venue} watch_ticker", self.exchange)
                if not isinstance(err, errors.RetryableError):
                    raise err from exc
                self.reconnects += 1
                log.warning("ticker.ws_dropped", extra={"venue": self.config.venue, "symbol": self.symbol,
                                                        "error": str(err)})
                await asyncio.sleep(min(1.0, self.config.base_delay_s))
                continue
            self._emit(dict(t))
