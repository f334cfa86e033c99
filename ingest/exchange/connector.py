"""Market connectors for any ccxt exchange id, configured per venue and symbol.

* :class:`VenueConfig` (frozen): venue id, symbols, timeframe, keys' environment variable
  names, sandbox mode, an optional base URL (the local exchange), retry policy.
* :func:`make_exchange`: one ccxt instance per (venue, key, sync/async, URL), ``enableRateLimit``.
* :class:`VenueClient`: every ccxt call goes through :func:`cryptolake.retry.call_with_retry`
  with errors translated by :func:`ingest.exchange.ccxt_compat.translate`; OHLCV backfill with
  pagination and resume from the last landed candle.
* :class:`TradeStream`: ccxt.pro ``watch_trades`` where the venue has it, REST polling where
  not (capability data from ccxt's ``has``, never a name check); after a dropped websocket the
  gap is backfilled over REST with no duplicate or missing trade ids.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cryptolake import errors
from cryptolake.logs import get_logger, register_secret
from cryptolake.retry import RetryPolicy, call_with_retry
from cryptolake.schemas import Message, OhlcvV1, TickerV1, TradeV1, WhaleTradeV1
from cryptolake.types import TIMEFRAME_MS
from ingest.exchange.ccxt_compat import point_ccxt_at, translate
from ingest.exchange.whales import WhaleDetector

log = get_logger(__name__)
Sink = Callable[[Message], None]


class VenueConfig(BaseModel):
    """One venue and the symbols to collect from it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    exchange_id: str = Field(..., description="ccxt exchange id, e.g. binance, kraken, coinbase")
    symbols: tuple[str, ...] = Field(..., min_length=1)
    timeframe: str = Field("1h")
    venue_name: str | None = Field(None, description="Name used in records; defaults to exchange_id")
    ohlcv_page_limit: int = Field(500, ge=1, le=5000)
    rate_limit_ms: int | None = Field(None, ge=0, description="Override ccxt's per-venue request spacing")
    api_key_env: str | None = Field(None, description="Environment variable holding the API key")
    secret_env: str | None = Field(None, description="Environment variable holding the API secret")
    sandbox: bool = Field(False, description="Use the venue's testnet/sandbox (ccxt set_sandbox_mode)")
    base_url: str | None = Field(None, description="Point every API URL here (the local exchange)")
    options: dict[str, Any] = Field(default_factory=dict, description="ccxt options")
    timeout_ms: int = Field(10_000, gt=0)
    max_attempts: int = Field(6, ge=1)
    base_delay_s: float = Field(0.5, ge=0)
    max_delay_s: float = Field(30.0, gt=0)
    poll_interval_s: float = Field(2.0, gt=0, description="REST polling period where websockets are missing")

    @property
    def venue(self) -> str:
        return self.venue_name or self.exchange_id

    def policy(self) -> RetryPolicy:
        return RetryPolicy(max_attempts=self.max_attempts, base_delay=self.base_delay_s, max_delay=self.max_delay_s)

    def credentials(self) -> dict[str, str]:
        """Keys from the environment only; registered as secrets so logs never show them."""
        creds: dict[str, str] = {}
        for field_name, env in (("apiKey", self.api_key_env), ("secret", self.secret_env)):
            if env is None:
                continue
            value = os.environ.get(env)
            if not value:
                raise errors.ConfigError(f"{self.venue}: environment variable {env} ({field_name}) is not set")
            register_secret(value)
            creds[field_name] = value
        return creds


_INSTANCES: dict[tuple[str, str, bool, str], Any] = {}


def make_exchange(config: VenueConfig, *, asynchronous: bool = False) -> Any:
    """The ccxt (or ccxt.pro) instance for this venue and key, created once per process."""
    creds = config.credentials()
    key = (config.exchange_id, creds.get("apiKey", ""), asynchronous, config.base_url or "")
    if key in _INSTANCES:
        return _INSTANCES[key]
    if asynchronous:
        import ccxt.pro as ccxt_mod
    else:
        import ccxt as ccxt_mod  # type: ignore[no-redef]
    cls = getattr(ccxt_mod, config.exchange_id, None)
    if cls is None:
        raise errors.ConfigError(f"unknown ccxt exchange id {config.exchange_id!r}"
                                 f"{' (no ccxt.pro websocket class)' if asynchronous else ''}")
    params: dict[str, Any] = {"enableRateLimit": True, "timeout": config.timeout_ms, **creds}
    if config.rate_limit_ms is not None:
        params["rateLimit"] = config.rate_limit_ms
    exchange = cls(params)
    exchange.options.update(config.options)
    if config.sandbox:
        exchange.set_sandbox_mode(True)
    if config.base_url:
        point_ccxt_at(exchange, config.base_url)
    _INSTANCES[key] = exchange
    log.info("exchange.instance", extra={"venue": config.venue, "async": asynchronous, "sandbox": config.sandbox,
                                         "local": bool(config.base_url)})
    return exchange


def forget_instances() -> None:
    """Drop cached instances (tests start fresh exchanges on new ports)."""
    _INSTANCES.clear()


class VenueClient:
    """Synchronous REST access to one venue with translated errors and retries."""

    def __init__(self, config: VenueConfig, exchange: Any = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self.exchange = exchange if exchange is not None else make_exchange(config)
        self.retries = 0
        self.reconciled = 0
        self._sleep = sleep

    def _counting_sleep(self, seconds: float) -> None:
        self.retries += 1
        self._sleep(seconds)

    def call(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run one ccxt call: ccxt errors become cryptolake errors; retryable ones are retried."""
        def once() -> Any:
            try:
                return fn()
            except Exception as exc:  # every ccxt/network error is translated, none swallowed
                raise translate(exc, f"{self.config.venue} {what}", self.exchange) from exc

        return call_with_retry(once, self.config.policy(), what=f"{self.config.venue}.{what}",
                               sleep=self._counting_sleep)

    def load_markets(self) -> dict[str, Any]:
        return dict(self.call("load_markets", self.exchange.load_markets))

    def has(self, capability: str) -> bool:
        """Capability data from ccxt (``exchange.has``), not venue-name branches."""
        return bool(self.exchange.has.get(capability))

    def backfill_ohlcv(self, symbol: str, since_ms: int, until_ms: int, sink: Sink,
                       resume_point: Callable[[], int | None] | None = None) -> int:
        """Fetch closed candles with open time in [since, until) page by page and send each to ``sink``.

        ``resume_point()`` returns the open time of the last landed candle (from the lake in
        production); the backfill restarts after it, so a re-run never re-sends landed candles.
        Returns the number of candles sent.
        """
        tf = self.config.timeframe
        step = TIMEFRAME_MS[tf]
        cursor = since_ms
        if resume_point is not None:
            last = resume_point()
            if last is not None:
                cursor = max(cursor, last + step)
        sent = pages = 0
        while cursor < until_ms:
            start = cursor
            rows = self.call("fetch_ohlcv", lambda: self.exchange.fetch_ohlcv(
                symbol, tf, since=start, limit=self.config.ohlcv_page_limit))  # noqa: B023 (called immediately)
            pages += 1
            rows = [r for r in rows if start <= int(r[0]) < until_ms]
            if not rows:
                break
            now = int(time.time() * 1000)
            for r in rows:
                open_time = int(r[0])
                sink(OhlcvV1(schema_version=1, event_time=open_time, available_time=open_time + step,
                             ingest_time=now, exchange=self.config.venue, symbol=symbol, timeframe=tf,
                             open=float(r[1]), high=float(r[2]), low=float(r[3]), close=float(r[4]),
                             volume=float(r[5])))
                sent += 1
            cursor = int(rows[-1][0]) + step
            log.info("ohlcv.backfill.page", extra={"venue": self.config.venue, "symbol": symbol, "page": pages,
                                                   "candles": sent, "cursor": cursor, "until": until_ms,
                                                   "retries": self.retries})
        log.info("ohlcv.backfill.done", extra={"venue": self.config.venue, "symbol": symbol, "candles": sent,
                                               "pages": pages, "retries": self.retries})
        return sent

    def place_order(self, symbol: str, order_type: str, side: str, amount: float, price: float | None = None,
                    *, client_order_id: str | None = None) -> dict[str, Any]:
        """Create an order at most once, even when the answer is lost.

        The order carries a client order id. When the call fails with a retryable error (a
        timeout after the venue accepted it, a 5xx, a dropped connection), the venue is asked
        for that client id before anything is re-sent: a found order is returned (reconciled),
        and only a venue that never saw it gets the order again (same client id).
        """
        cid = client_order_id or f"cl{uuid.uuid4().hex[:30]}"
        what = f"{self.config.venue} create_order"

        def once() -> dict[str, Any]:
            try:
                return dict(self.exchange.create_order(symbol, order_type, side, amount, price,
                                                       {"clientOrderId": cid}))
            except Exception as exc:  # translated below; nothing is swallowed
                err = translate(exc, what, self.exchange)
                if not isinstance(err, errors.RetryableError):
                    raise err from exc
                found = self._find_order(symbol, cid)
                if found is None:
                    raise err from exc  # the venue never saw it: safe to send again
                self.reconciled += 1
                log.warning("order.reconciled", extra={"venue": self.config.venue, "symbol": symbol,
                                                       "client_order_id": cid, "order_id": found.get("id"),
                                                       "status": found.get("status"), "error": str(err)})
                return found

        return call_with_retry(once, self.config.policy(), what=f"{self.config.venue}.create_order",
                               sleep=self._counting_sleep)

    def _find_order(self, symbol: str, client_order_id: str) -> dict[str, Any] | None:
        """The venue's order with this client id, or None if the venue does not know it."""
        try:
            found = self.call("fetch_order", lambda: self.exchange.fetch_order(
                "", symbol, {"clientOrderId": client_order_id}))
        except errors.OrderNotFoundError:
            return None
        return dict(found)

    def poll_ticker(self, symbol: str, sink: Sink) -> TickerV1:
        """One REST ticker poll (venues without websocket tickers)."""
        t = self.call("fetch_ticker", lambda: self.exchange.fetch_ticker(symbol))
        msg = ticker_message(self.config.venue, symbol, t)
        sink(msg)
        return msg


def ticker_message(venue: str, symbol: str, t: dict[str, Any]) -> TickerV1:
    now = int(time.time() * 1000)
    ts = int(t.get("timestamp") or now)
    return TickerV1(schema_version=1, event_time=ts, available_time=ts, ingest_time=now, exchange=venue,
                    symbol=symbol, bid=t.get("bid"), ask=t.get("ask"), last=t.get("last"),
                    base_volume=t.get("baseVolume"))


def trade_message(venue: str, symbol: str, t: dict[str, Any], source: str) -> TradeV1:
    now = int(time.time() * 1000)
    ts = int(t["timestamp"])
    return TradeV1(schema_version=1, event_time=ts, available_time=ts, ingest_time=now, exchange=venue,
                   symbol=symbol, trade_id=str(t["id"]), price=float(t["price"]), amount=float(t["amount"]),
                   side=t.get("side"), source=source)  # type: ignore[arg-type]


class TradeStream:
    """Trades of one symbol: websocket where the venue has it, REST polling where not.

    A dropped websocket is reconnected (ccxt.pro reconnects on the next ``watch_trades``);
    the trades missed meanwhile are fetched over REST from the last seen trade, so the
    published ids have no duplicates and no holes. Whale trades are flagged on the way.
    """

    def __init__(self, config: VenueConfig, symbol: str, sink: Sink, *, exchange: Any = None,
                 rest: VenueClient | None = None, whales: WhaleDetector | None = None,
                 seen_capacity: int = 200_000) -> None:
        self.config = config
        self.rest = rest if rest is not None else VenueClient(config)
        self.symbol = symbol
        self.sink = sink
        self.exchange = exchange if exchange is not None else make_exchange(config, asynchronous=True)
        self.whales = whales
        self._seen: set[str] = set()
        self._order: deque[str] = deque()
        self._capacity = seen_capacity
        self.last_ts: int | None = None
        self.published = 0
        self.reconnects = 0
        self.backfilled = 0
        self.duplicates_dropped = 0

    def _remember(self, trade_id: str) -> bool:
        if trade_id in self._seen:
            self.duplicates_dropped += 1
            return False
        self._seen.add(trade_id)
        self._order.append(trade_id)
        if len(self._order) > self._capacity:
            self._seen.discard(self._order.popleft())
        return True

    def _emit(self, trades: list[dict[str, Any]], source: str) -> int:
        n = 0
        for t in sorted(trades, key=lambda x: (int(x["timestamp"]), _id_key(x["id"]))):
            if not self._remember(str(t["id"])):
                continue
            self.sink(trade_message(self.config.venue, self.symbol, t, source))
            if self.whales is not None:
                is_whale, notional, limit = self.whales.check(float(t["price"]), float(t["amount"]))
                if is_whale and limit is not None:
                    ts = int(t["timestamp"])
                    self.sink(WhaleTradeV1(schema_version=1, event_time=ts, available_time=ts,
                                           ingest_time=int(time.time() * 1000), exchange=self.config.venue,
                                           symbol=self.symbol, trade_id=str(t["id"]), price=float(t["price"]),
                                           amount=float(t["amount"]), notional=notional, threshold=limit,
                                           side=t.get("side")))
            self.last_ts = max(self.last_ts or 0, int(t["timestamp"]))
            self.published += 1
            n += 1
        return n

    async def _rest_trades(self, since: int | None, limit: int | None) -> list[dict[str, Any]]:
        # REST goes through the sync client (and so through cryptolake.retry) on a worker thread.
        rest = self.rest
        rows = await asyncio.to_thread(rest.call, "fetch_trades",
                                       lambda: rest.exchange.fetch_trades(self.symbol, since=since, limit=limit))
        return list(rows)

    async def backfill(self, until_id: str | None = None) -> int:
        """Fetch trades after the last seen one over REST (paginated) up to ``until_id``."""
        if self.last_ts is None:
            return 0
        total = 0
        since = self.last_ts
        while True:
            start = since
            page = await self._rest_trades(start, 1000)
            if until_id is not None:
                page = [t for t in page if _id_key(t["id"]) < _id_key(until_id)]
            fresh = [t for t in page if str(t["id"]) not in self._seen]
            total += self._emit(fresh, "rest")
            if len(page) < 1000 or not fresh:
                break
            since = int(page[-1]["timestamp"])
        self.backfilled += total
        log.info("trades.backfilled", extra={"venue": self.config.venue, "symbol": self.symbol, "trades": total})
        return total

    async def run(self, stop: asyncio.Event, max_trades: int | None = None) -> None:
        """Stream until ``stop`` is set (or ``max_trades`` were published)."""
        use_ws = bool(self.exchange.has.get("watchTrades"))
        need_backfill = False
        while not stop.is_set() and (max_trades is None or self.published < max_trades):
            if not use_ws:
                if self.last_ts is None:
                    self._emit(await self._rest_trades(None, None), "rest")
                else:
                    await self.backfill()
                await asyncio.sleep(self.config.poll_interval_s)
                continue
            try:
                batch = await self.exchange.watch_trades(self.symbol)
            except Exception as exc:  # a dropped socket: reconnect and backfill, others raise
                err = translate(exc, f"{self.config.venue} watch_trades", self.exchange)
                if not isinstance(err, errors.RetryableError):
                    raise err from exc
                self.reconnects += 1
                need_backfill = True
                log.warning("trades.ws_dropped", extra={"venue": self.config.venue, "symbol": self.symbol,
                                                        "error": str(err), "reconnects": self.reconnects})
                await asyncio.sleep(min(1.0, self.config.base_delay_s))
                continue
            if need_backfill and batch:
                first_new = min(batch, key=lambda x: _id_key(x["id"]))["id"]
                await self.backfill(until_id=str(first_new))
                need_backfill = False
            self._emit(list(batch), "ws")


def _id_key(trade_id: Any) -> tuple[int, str]:
    text = str(trade_id)
    return (int(text), "") if text.isdigit() else (0, text)
