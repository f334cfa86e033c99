"""Closed bars from a ccxt venue for the live trader: polled over REST (``fetch_ohlcv``, :class:`CcxtBarFeed`)
or streamed by ccxt.pro ``watch_ohlcv`` over the venue's websocket (:class:`WsBarFeed`, REST for the
warm-up and to fill the gap after a dropped connection).

A candle is *closed* once its close time has passed on the venue's clock, or once a later candle of
the same symbol exists (a replayed venue's history). Bars of several symbols are released together
up to the latest open time every symbol has reached (a barrier), in :func:`event_sort_key` order,
so the node sees one ordered stream; a symbol that stops publishing holds the barrier (the stale-data
kill switch watches the time since the last bar). Every candle goes through :func:`decode_bar`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cryptolake.ccxt_compat import ProLoop
from cryptolake.logs import get_logger
from trader.domain import timeframe_delta
from trader.feeds.base import Event, decode_bar, event_sort_key

log = get_logger(__name__)

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


class WsBarFeed(CcxtBarFeed):
    """Bars from ccxt.pro ``watch_ohlcv`` (one watch per symbol on a background event loop).

    The websocket's candles go through the same closed-candle rule and barrier as :class:`CcxtBarFeed`;
    an in-progress candle waits until it closes. REST ``fetch_ohlcv`` runs only for the warm-up and,
    after the connection dropped (the watch raised), once from the last bar released, so no bar is
    lost; the watch then reconnects with a capped back-off.
    """

    def __init__(self, pro_exchange: Any, exchange: Any, venue: str, symbols: list[str], timeframe: str, *,
                 after_ms: int | None, warmup_bars: int, call: Call) -> None:
        super().__init__(exchange, venue, symbols, timeframe, after_ms=after_ms, warmup_bars=warmup_bars, call=call)
        self.pro = pro_exchange
        self._rows: dict[str, dict[int, list[float]]] = {s: {} for s in symbols}
        self._lock = threading.Lock()
        self._needs_rest = set(symbols)
        self._closing = False
        self.ws_rows = 0  # candles received over the websocket
        self.rest_fetches = 0  # REST fetches (warm-up and gap fills)
        self.drops = 0  # watch failures (dropped connections)
        self._loop = ProLoop(pro_exchange, "ws-bars")
        for s in symbols:
            self._loop.spawn(self._watch(s))

    async def _watch(self, symbol: str) -> None:
        delay = 0.25
        while not self._closing:
            try:
                rows = await self.pro.watch_ohlcv(symbol, self.timeframe)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a dropped connection: REST fills the gap, the next watch reconnects
                if self._closing:
                    return
                with self._lock:
                    self._needs_rest.add(symbol)
                    self.drops += 1
                log.warning("feed.ws_dropped", extra={"symbol": symbol, "error": str(exc)[:200], "retry_s": delay})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            delay = 0.25
            with self._lock:
                for r in rows:
                    self._rows[symbol][int(r[0])] = [float(x) for x in r[1:6]]
                self.ws_rows += len(rows)

    def _fetch(self, symbol: str) -> None:
        with self._lock:
            rest = symbol in self._needs_rest
            self._needs_rest.discard(symbol)
            rows, self._rows[symbol] = self._rows[symbol], {}
        if rest:
            self.rest_fetches += 1
            super()._fetch(symbol)
        now = int(self.exchange.milliseconds())
        latest = max(rows) if rows else None
        waiting = {}
        for t in sorted(rows):
            since = self._since[symbol]
            if since is not None and t < since:
                continue  # released (or pending) already
            if t + self._tf_ms <= now or (latest is not None and t < latest):
                self._pending[symbol][t] = rows[t]
                self._since[symbol] = t + 1
            else:
                waiting[t] = rows[t]  # still in progress: looked at again at the next poll
        if waiting:
            with self._lock:
                for t, v in waiting.items():
                    self._rows[symbol].setdefault(t, v)

    def close(self) -> None:
        """Stop the watches and close the websocket."""
        self._closing = True
        self._loop.close()
