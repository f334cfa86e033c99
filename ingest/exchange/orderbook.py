"""A local L2 order book from a REST snapshot plus websocket diffs, with Binance's sequence rules.

Binance spot (``<symbol>@depth``): buffer diffs; fetch a snapshot; drop diffs with
``u <= lastUpdateId``; the first applied diff must satisfy ``U <= lastUpdateId + 1 <= u``;
every later diff must have ``U == previous u + 1``. Anything else is a gap: the book is
marked out of sync, counted, and rebuilt from a fresh snapshot (never a silently wrong book).
Quantities of 0 delete a level. Metrics per interval come from :func:`book_metrics`.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptolake.errors import DataValidationError
from cryptolake.logs import get_logger

log = get_logger(__name__)

Level = tuple[float, float]


class SequenceGapError(DataValidationError):
    """A diff does not continue the book's update id sequence."""

    def __init__(self, symbol: str, expected: int, got_first: int, got_last: int) -> None:
        super().__init__("U", got_first, f"{symbol}: expected update id {expected}, diff covers "
                                         f"{got_first}..{got_last}")
        self.expected = expected


@dataclass
class OrderBook:
    """Price -> quantity per side, plus the last applied update id."""

    symbol: str
    bids: dict[float, float] = field(default_factory=dict)
    asks: dict[float, float] = field(default_factory=dict)
    last_update_id: int | None = None
    event_time: int | None = None

    def load_snapshot(self, last_update_id: int, bids: Iterable[Sequence[Any]], asks: Iterable[Sequence[Any]]) -> None:
        self.bids = {float(p): float(q) for p, q in bids if float(q) != 0}
        self.asks = {float(p): float(q) for p, q in asks if float(q) != 0}
        self.last_update_id = int(last_update_id)

    def apply_levels(self, bids: Iterable[Sequence[Any]], asks: Iterable[Sequence[Any]]) -> None:
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for p, q in levels:
                price, qty = float(p), float(q)
                if qty == 0:
                    side.pop(price, None)
                else:
                    side[price] = qty

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        """Best ``n`` bids (highest first) and asks (lowest first)."""
        bids = heapq.nlargest(n, self.bids.items())
        asks = heapq.nsmallest(n, self.asks.items())
        return bids, asks

    def is_crossed(self) -> bool:
        return bool(self.bids and self.asks and max(self.bids) >= min(self.asks))


class BookSynchronizer:
    """Keeps an :class:`OrderBook` in sync from diffs; resyncs from ``fetch_snapshot`` on a gap.

    ``fetch_snapshot()`` returns a Binance depth answer ``{"lastUpdateId", "bids", "asks"}``
    (ccxt's ``fetch_order_book`` result with ``nonce`` also works).
    """

    def __init__(self, symbol: str, fetch_snapshot: Callable[[], dict[str, Any]]) -> None:
        self.book = OrderBook(symbol)
        self.fetch_snapshot = fetch_snapshot
        self._buffer: list[dict[str, Any]] = []
        self.synced = False
        self.resyncs = 0
        self.gaps = 0
        self.applied = 0
        self.dropped = 0
        self._fresh = False  # next diff is the first after a snapshot

    def on_diff(self, diff: dict[str, Any]) -> bool:
        """Feed one ``depthUpdate``; True when the book is in sync afterwards."""
        if not self.synced:
            self._buffer.append(diff)
            return self._try_sync()
        try:
            self._apply(diff)
        except SequenceGapError as exc:
            self.gaps += 1
            log.warning("orderbook.gap", extra={"symbol": self.book.symbol, "error": str(exc)})
            self.synced = False
            self._buffer = [diff]
            self.resyncs += 1
            return self._try_sync()
        return True

    def _apply(self, diff: dict[str, Any]) -> None:
        first, last = int(diff["U"]), int(diff["u"])
        last_id = self.book.last_update_id
        assert last_id is not None
        if last <= last_id:
            self.dropped += 1
            return
        ok = straddles(diff, last_id) if self._fresh else first == last_id + 1
        if not ok:
            raise SequenceGapError(self.book.symbol, last_id + 1, first, last)
        self.book.apply_levels(diff.get("b", ()), diff.get("a", ()))
        self.book.last_update_id = last
        self.book.event_time = int(diff["E"]) if "E" in diff else self.book.event_time
        self._fresh = False
        self.applied += 1

    def _try_sync(self) -> bool:
        snap = self.fetch_snapshot()
        last_id = int(snap["lastUpdateId"] if "lastUpdateId" in snap else snap["nonce"])
        buffered = [d for d in self._buffer if int(d["u"]) > last_id]
        if buffered and int(buffered[0]["U"]) > last_id + 1:
            # Updates between the snapshot and the first buffered diff are missing: keep
            # buffering; the next diff fetches a newer snapshot.
            log.warning("orderbook.snapshot_too_old", extra={"symbol": self.book.symbol, "snapshot": last_id,
                                                             "first_U": buffered[0]["U"]})
            return False
        self.book.load_snapshot(last_id, snap["bids"], snap["asks"])
        self._buffer = []
        self._fresh = True
        self.synced = True
        for i, d in enumerate(buffered):
            try:
                self._apply(d)
            except SequenceGapError as exc:
                self.gaps += 1
                log.warning("orderbook.gap", extra={"symbol": self.book.symbol, "error": str(exc)})
                self.synced = False
                self._buffer = buffered[i:]
                return False
        log.info("orderbook.synced", extra={"symbol": self.book.symbol, "snapshot": last_id,
                                            "replayed": len(buffered)})
        return True


def straddles(diff: dict[str, Any], last_id: int) -> bool:
    """Binance's first-diff rule: ``U <= lastUpdateId + 1 <= u``."""
    return int(diff["U"]) <= last_id + 1 <= int(diff["u"])


@dataclass(frozen=True)
class BookMetrics:
    """Derived metrics of one book state."""

    best_bid: float
    best_ask: float
    mid: float
    spread: float
    spread_bps: float
    microprice: float
    depth_bid: dict[int, float]  # levels -> summed quantity
    depth_ask: dict[int, float]
    imbalance: dict[int, float]  # levels -> (bid - ask) / (bid + ask)


def book_metrics(book: OrderBook, levels: Sequence[int] = (1, 5, 10, 20)) -> BookMetrics:
    """Spread, mid, microprice, and depth and imbalance at several levels."""
    deepest = max(levels)
    bids, asks = book.top(deepest)
    if not bids or not asks:
        raise DataValidationError("book", book.symbol, "needs both sides for metrics")
    (bb, bq), (ba, aq) = bids[0], asks[0]
    mid = (bb + ba) / 2
    micro = (bb * aq + ba * bq) / (bq + aq)
    depth_b = {n: sum(q for _, q in bids[:n]) for n in levels}
    depth_a = {n: sum(q for _, q in asks[:n]) for n in levels}
    imb = {n: (depth_b[n] - depth_a[n]) / (depth_b[n] + depth_a[n]) for n in levels}
    return BookMetrics(bb, ba, mid, ba - bb, (ba - bb) / mid * 1e4, micro, depth_b, depth_a, imb)
