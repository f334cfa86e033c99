"""Closed bars from a ccxt venue, polled over REST (``fetch_ohlcv``), for the live trader.

A candle is *closed* once its close time has passed on the venue's clock, or once a later candle of
the same symbol exists (a replayed venue's history). Bars of several symbols are released together
up to the latest open time every symbol has reached (a barrier), in :func:`event_sort_key` order,
so the node sees one ordered stream; a symbol that stops publishing holds the barrier (the stale-data
kill switch watches the time since the last bar). Every candle goes through :func:`decode_bar`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from trader.domain import timeframe_delta
from trader.feeds.base import Event, decode_bar, event_sort_key

Call = Callable[[str, Callable[[], Any]], Any]


class CcxtBarFeed:
    """Polls ``fetch_ohlcv`` per symbol; :meth:`poll` returns the newly closed bars in order."""

    def __init__(self, exchange: Any, venue: str, symbols: list[str], timeframe: str, *, after_ms: int | None,
                 warmup_bars: int, call: Call) -> None:
        self.exchange = exchange
        self.venue = venue
        self.symbols = symbols
        self.timeframe = timeframe
        self._tf_ms = int(timeframe_delta(timeframe).total_seconds() * 1000)
        self._call = call
        self.after_ms = after_ms  # open time of the last bar released (None: nothing yet)
        self.warmup_bars = warmup_bars
        self._pending: dict[str, dict[int, list[float]]] = {s: {} for s in symbols}
        self._since: dict[str, int | None] = dict.fromkeys(symbols)
        self.start_ms: int | None = None  # first bar to trade (earlier ones warm up)
        self.bars_released = 0

    def _fetch(self, symbol: str) -> None:
        since = self._since[symbol]
        if since is None and self.after_ms is not None:
            since = self.after_ms - self.warmup_bars * self._tf_ms
        limit = 1000 if since is not None else self.warmup_bars + 2
        rows = self._call("fetch_ohlcv", lambda: self.exchange.fetch_ohlcv(symbol, self.timeframe, since, limit))
        now = int(self.exchange.milliseconds())
        rows = sorted(rows, key=lambda r: int(r[0]))
        latest = int(rows[-1][0]) if rows else None
        for r in rows:
            t = int(r[0])
            if t + self._tf_ms <= now or (latest is not None and t < latest):
                self._pending[symbol][t] = [float(x) for x in r[1:6]]
                self._since[symbol] = t + 1

    def poll(self) -> list[Event]:
        """The bars closed since the last poll, every symbol up to the common barrier, ordered."""
        for s in self.symbols:
            self._fetch(s)
        if any(not p for p in self._pending.values()):
            return []
        barrier = min(max(p) for p in self._pending.values())
        if self.start_ms is None:
            self.start_ms = self.after_ms + self._tf_ms if self.after_ms is not None else barrier + self._tf_ms
        out: list[Event] = []
        for s in self.symbols:
            for t in sorted(k for k in self._pending[s] if k <= barrier):
                o, h, lo, c, v = self._pending[s].pop(t)
                out.append(decode_bar(self.venue, s, self.timeframe, datetime.fromtimestamp(t / 1000, UTC),
                                      o, h, lo, c, v))
        out.sort(key=event_sort_key)
        self.bars_released += len(out)
        return out

    @property
    def start_time(self) -> datetime | None:
        return None if self.start_ms is None else datetime.fromtimestamp(self.start_ms / 1000, UTC)
