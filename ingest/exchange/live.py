"""The long-running market connector: closed candles from ccxt.pro ``watch_ohlcv`` into ``market.ohlcv``.

Exactly what the batch path publishes (:meth:`ingest.replay.Candle.payload`, keyed ``exchange:symbol``,
validated by :class:`cryptolake.bus.Producer`, invalid candles dead-lettered). A candle is published once
it is closed: its close time has passed on the venue's clock, or a later candle of the symbol exists.
Each candle goes out once: the connector starts after the topic's high-water mark per key
(:func:`ingest.published.high_water_marks`: what Kafka and bronze already hold, so a SIGKILL and restart
resumes without a hole or a copy), fills any hole over REST (at start, after a dropped websocket, and
when the websocket skips ahead), and then follows the websocket. While the broker is down the records
wait in the idempotent producer's bounded local queue and are delivered when it is back (no copy: the
idempotent producer's sequence numbers); a record the broker never acknowledged makes the process
exit non-zero, and the restart resumes from what Kafka holds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptolake import errors, topics
from cryptolake.logs import get_logger
from cryptolake.types import TIMEFRAME_MS
from ingest.exchange.ccxt_compat import translate
from ingest.exchange.connector import VenueClient, VenueConfig, make_exchange
from ingest.replay import Candle

log = get_logger(__name__)


@dataclass
class OhlcvCounters:
    """What the connector did (exported as metrics)."""

    published: dict[str, int] = field(default_factory=dict)  # symbol -> candles sent
    by_source: dict[str, int] = field(default_factory=lambda: {"ws": 0, "rest": 0})
    dead_lettered: int = 0
    ws_drops: int = 0
    rest_fills: int = 0
    last_open: dict[str, int] = field(default_factory=dict)


class OhlcvStream:
    """Closed candles of every symbol of one venue at one timeframe, each published once."""

    def __init__(self, config: VenueConfig, producer: Any, *, resume_after: dict[str, int] | None = None,
                 lookback_bars: int = 1000, exchange: Any = None, rest: VenueClient | None = None,
                 now_ms: Callable[[], int] | None = None) -> None:
        self.config = config
        self.tf = config.timeframe
        self.tf_ms = TIMEFRAME_MS[self.tf]
        self.producer = producer
        self.exchange = exchange if exchange is not None else make_exchange(config, asynchronous=True)
        self.rest = rest if rest is not None else VenueClient(config)
        self.lookback_bars = lookback_bars
        self._now = now_ms or (lambda: int(time.time() * 1000))
        marks = resume_after or {}
        self.last: dict[str, int | None] = {s: marks.get(topics.market_key(config.venue, s)) for s in config.symbols}
        self.counters = OhlcvCounters()

    # --- publishing ----------------------------------------------------------------
    def _closed(self, rows: list[list[Any]]) -> list[list[Any]]:
        rows = sorted(rows, key=lambda r: int(r[0]))
        latest = int(rows[-1][0]) if rows else None
        now = self._now()
        return [r for r in rows if int(r[0]) + self.tf_ms <= now or (latest is not None and int(r[0]) < latest)]

    def emit(self, symbol: str, rows: list[list[Any]], source: str) -> int:
        """Publish the closed rows after the symbol's last published open time, in order; returns how many."""
        sent = 0
        for r in self._closed(rows):
            t = int(r[0])
            last = self.last[symbol]
            if last is not None and t <= last:
                continue
            candle = Candle(self.config.venue, symbol, self.tf, t, float(r[1]), float(r[2]), float(r[3]),
                            float(r[4]), float(r[5]))
            if self.producer.send(topics.MARKET_OHLCV, candle.payload(self._now()),
                                  topics.market_key(self.config.venue, symbol)):
                sent += 1
                self.counters.published[symbol] = self.counters.published.get(symbol, 0) + 1
                self.counters.by_source[source] += 1
            else:
                self.counters.dead_lettered += 1
            self.last[symbol] = t
            self.counters.last_open[symbol] = t
        return sent

    # --- REST gap fill --------------------------------------------------------------
    def _fetch(self, symbol: str, since: int | None, limit: int) -> list[list[Any]]:
        rest = self.rest
        return list(rest.call("fetch_ohlcv", lambda: rest.exchange.fetch_ohlcv(symbol, self.tf, since=since,
                                                                               limit=limit)))

    async def fill(self, symbol: str) -> int:
        """REST: every closed candle after the last published one (or the latest ``lookback_bars``), paged."""
        self.counters.rest_fills += 1
        total = 0
        while True:
            last = self.last[symbol]
            since = None if last is None else last + self.tf_ms
            limit = self.lookback_bars if last is None else self.config.ohlcv_page_limit
            rows = await asyncio.to_thread(self._fetch, symbol, since, limit)
            n = self.emit(symbol, rows, "rest")
            total += n
            if n == 0 or len(rows) < limit:
                break
        if total:
            log.info("ohlcv.rest_fill", extra={"venue": self.config.venue, "symbol": symbol, "candles": total,
                                               "last_open": self.last[symbol]})
        return total

    # --- websocket --------------------------------------------------------------------
    async def run_symbol(self, symbol: str, stop: asyncio.Event) -> None:
        """Fill, then follow ``watch_ohlcv`` until ``stop``; a drop is retried with back-off and filled over REST."""
        await self.fill(symbol)
        delay = 0.25
        need_fill = False
        while not stop.is_set():
            try:
                rows = await self.exchange.watch_ohlcv(symbol, self.tf)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # translated; a dropped socket is retried, anything else raises
                err = translate(exc, f"{self.config.venue} watch_ohlcv", self.exchange)
                if not isinstance(err, errors.RetryableError):
                    raise err from exc
                self.counters.ws_drops += 1
                need_fill = True
                log.warning("ohlcv.ws_dropped", extra={"venue": self.config.venue, "symbol": symbol,
                                                       "error": str(err)[:200], "retry_s": delay})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            delay = 0.25
            closed = self._closed([list(r) for r in rows])
            last = self.last[symbol]
            ahead = closed and last is not None and int(closed[0][0]) > last + self.tf_ms
            if need_fill or ahead:
                await self.fill(symbol)  # the hole the websocket did not deliver
                need_fill = False
            self.emit(symbol, closed, "ws")

    async def run(self, stop: asyncio.Event) -> None:
        """Every symbol concurrently until ``stop``; the first fatal error ends all of them."""
        tasks = [asyncio.create_task(self.run_symbol(s, stop)) for s in self.config.symbols]
        stopper = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t is not stopper and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
        finally:
            for t in [*tasks, stopper]:
                t.cancel()
            await asyncio.gather(*tasks, stopper, return_exceptions=True)
