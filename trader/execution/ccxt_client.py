"""The execution client for any ccxt venue (spot), with a write-ahead order journal.

One :class:`CcxtExecutionClient` per account. Everything it does to an order is a transition of
:mod:`trader.orders`, stored *before* the request it leads to:

* **submit**: amounts and prices rounded to the market's precision (``amount_to_precision`` /
  ``price_to_precision``) and checked against its limits (minimum amount, minimum notional); an order
  that cannot be sent is REJECTED locally with the field and the value. Then SUBMITTED is stored and
  ``create_order`` sent with the deterministic client order id in ccxt's unified ``clientOrderId``
  param (``<prefix><strategy>-<seq>-<kind>``). Only a 429 (the venue refused before processing) is
  retried; a timeout or a 5xx is *ambiguous* (the venue may have accepted): the order becomes
  UNKNOWN and is resolved by looking its client order id up, never by sending it again. An UNKNOWN
  order the venue still does not know once the request's ``recvWindow`` has passed can never be
  accepted any more: it is REJECTED ("never reached the venue").
* **cancel**: PENDING_CANCEL stored, then ``cancel_order``; a cancel of an order that already
  filled resolves to the venue's final state. Cancels are never blocked by risk or a halt.
* **fills**: with ``user_stream`` and a venue whose ccxt.pro class has ``watchMyTrades`` and
  ``watchOrders``, trades and order updates arrive over the user-data stream (:class:`UserStream`)
  and are booked at each :meth:`CcxtExecutionClient.poll` with no REST call. REST polling
  (``fetch_my_trades`` per symbol from the last trade id REST adopted) is the fallback: while the
  stream is down, once after each (re)subscription (it fills the gap), and every ``rest_check_s`` as a
  safety net. Only REST moves the trade cursor, so a trade the stream missed is always found; both
  paths book through :meth:`CcxtExecutionClient._book` and the journal keeps trade ids, so each
  trade is booked exactly once. Binance charges a buy's fee in the base asset: such a
  fill is booked as the *net* quantity received with the fee valued in the quote currency, so cash
  and position equal the venue's balances.
* **stops** where the market has no stop order type (``info.orderTypes``) are emulated: they rest in
  the journal and are sent as market orders once a bar trades through the trigger (so a triggered
  stop fills up to one bar late; said in docs/trading.md). OCO groups are emulated the same way: a
  fill cancels the siblings.

Every ccxt call goes through :meth:`CcxtExecutionClient._call`: errors translated by
:func:`cryptolake.ccxt_compat.translate`, retried by :func:`cryptolake.retry.call_with_retry`.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from cryptolake import errors
from cryptolake.ccxt_compat import ProLoop, point_ccxt_at, translate
from cryptolake.logs import get_logger, register_secret
from cryptolake.retry import RetryPolicy, call_with_retry
from cryptolake.secrets import read_secret
from trader.domain import Bar, Fill, Instrument, Liquidity, Order, OrderStatus, OrderType, Side
from trader.execution.base import ExecutionClient, FillHandler, ReconcileReport
from trader.orders import TERMINAL, IllegalTransitionError, OrderJournal

log = get_logger(__name__)
T = TypeVar("T")
S = OrderStatus
RECONCILE_READS = 8  # balance reads per reconciliation at most, while fills keep arriving between them
_CID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")  # Binance's newClientOrderId rule (the strictest common one)
_STATUS = {"open": S.ACCEPTED, "closed": S.FILLED, "canceled": S.CANCELED, "expired": S.EXPIRED,
           "rejected": S.REJECTED}


class CcxtVenueConfig(BaseModel):
    """One venue account reached through ccxt. Keys only from the environment or files."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    exchange_id: str = Field(default="binance", description="ccxt exchange id")
    venue_name: str | None = Field(default=None, description="Exchange name in instrument keys; default exchange_id")
    base_url: str | None = Field(default=None, description="Point every API URL here (the local exchange)")
    sandbox: bool = Field(default=False, description="The venue's testnet (ccxt set_sandbox_mode)")
    api_key_env: str = Field(default="CRYPTOLAKE__TRADER__API_KEY", description="Env var holding the API key")
    secret_env: str = Field(default="CRYPTOLAKE__TRADER__API_SECRET", description="Env var holding the secret")
    api_key_file: Path | None = Field(default=None, description="File holding the API key (wins over the env)")
    secret_file: Path | None = Field(default=None, description="File holding the secret (wins over the env)")
    client_id_prefix: str = Field(default="", max_length=8, pattern=r"^[A-Za-z0-9_]*$",
                                  description="Prefix of every client order id (several accounts on one key)")
    timeout_ms: int = Field(default=10_000, gt=0)
    recv_window_ms: int = Field(default=5_000, gt=0, le=60_000, description="A signed request is void after this")
    max_attempts: int = Field(default=5, ge=1)
    base_delay_s: float = Field(default=0.25, ge=0)
    max_delay_s: float = Field(default=8.0, gt=0, description="Back-off cap (bounded back-off in a 429 storm)")
    options: dict[str, Any] = Field(default_factory=dict, description="ccxt options")
    user_stream: bool = Field(default=True, description="Fills and order updates from ccxt.pro watch_my_trades / "
                                                         "watch_orders where the venue has them; REST as fallback")
    rest_check_s: float = Field(default=30.0, gt=0, description="With the user stream up: REST polls this often "
                                                              "anyway (the safety net)")

    @property
    def venue(self) -> str:
        return self.venue_name or self.exchange_id

    def policy(self) -> RetryPolicy:
        return RetryPolicy(max_attempts=self.max_attempts, base_delay=self.base_delay_s, max_delay=self.max_delay_s)

    def credentials(self) -> dict[str, str]:
        """{apiKey, secret} from the files or the environment (registered as secrets: never logged); {} if none."""
        out: dict[str, str] = {}
        for name, file, env in (("apiKey", self.api_key_file, self.api_key_env),
                                ("secret", self.secret_file, self.secret_env)):
            value = file.read_text().strip() if file is not None else (read_secret(env) or "")
            if value:
                register_secret(value)
                out[name] = value
        return out


def make_ccxt(config: CcxtVenueConfig, *, require_keys: bool = True, pro: bool = False) -> Any:
    """A synchronous ccxt exchange for ``config`` (with ``pro``: the ccxt.pro websocket class):
    ``enableRateLimit``, sandbox and local URLs by setting."""
    import ccxt

    if pro:
        import ccxt.pro  # only a websocket feed pays for importing it
    cls = getattr(ccxt.pro if pro else ccxt, config.exchange_id, None)
    if cls is None:
        raise errors.ConfigError(f"unknown ccxt exchange id exchange_id={config.exchange_id!r}")
    creds = config.credentials()
    if require_keys and len(creds) < 2:
        raise errors.AuthenticationError(
            f"{config.venue}: API key and secret are needed (env {config.api_key_env} / {config.secret_env} "
            f"or files api_key_file / secret_file)")
    exchange = cls({"enableRateLimit": True, "timeout": config.timeout_ms, **creds})
    exchange.options.update({"recvWindow": config.recv_window_ms, **config.options})
    if config.sandbox:
        exchange.set_sandbox_mode(True)
    if config.base_url:
        point_ccxt_at(exchange, config.base_url)
    return exchange


def _decimals(step: Any) -> int:
    d = Decimal(str(step)).normalize()
    return max(0, -int(d.as_tuple().exponent))  # type: ignore[arg-type]


class AmbiguousSubmitError(errors.ExchangeError):
    """A submit whose outcome is unknown (timeout, 5xx): never retried by sending again."""


def ccxt_call(exchange: Any, what: str, fn: Callable[[], T], policy: RetryPolicy, *, submit: bool = False,
              sleep: Callable[[float], None] = time.sleep, on_retry: Callable[[], None] | None = None) -> T:
    """THE way the trader calls ccxt: errors translated at the boundary, retryable ones retried.

    With ``submit`` only a rate-limit answer is retried (the venue refused before processing); any
    other retryable failure raises :class:`AmbiguousSubmitError`: the order may exist.
    """
    def attempt() -> T:
        try:
            return fn()
        except Exception as exc:  # translated at the boundary, nothing else escapes
            err = translate(exc, what, exchange)
            if submit and isinstance(err, errors.RetryableError) and not isinstance(err, errors.RateLimitedError):
                raise AmbiguousSubmitError(str(err)) from exc
            if isinstance(err, errors.RetryableError) and on_retry is not None:
                on_retry()
            raise err from exc

    return call_with_retry(attempt, policy, what=f"ccxt.{what}", sleep=sleep)


def market_instruments(exchange: Any, venue: str, symbols: list[str], policy: RetryPolicy | None = None) -> list[
        Instrument]:
    """The instruments of ``symbols`` at the market's precision (price tick; 8 quantity decimals: base fees;
    the amount step as the lot below which a position is dust)."""
    markets = ccxt_call(exchange, "load_markets", exchange.load_markets, policy or RetryPolicy())
    missing = [s for s in symbols if s not in markets]
    if missing:
        raise errors.ConfigError(f"symbols {missing} are not markets of {venue}")
    return [Instrument(venue, s, _decimals(markets[s]["precision"]["price"]), 8,
                       float(markets[s]["precision"]["amount"] or 0.0)) for s in symbols]


class UserStream:
    """ccxt.pro ``watch_my_trades`` and ``watch_orders`` on a background event loop; the client drains them.

    ``epoch`` counts (re)subscriptions: it moves once the venue acknowledged the user-data subscription
    (``authenticate``: Binance's ``userDataStream.subscribe.signature``), so a REST poll started after
    reading it covers everything the stream may have missed before. A failed watch (dropped
    connection) sets ``up`` False and reconnects with a capped back-off.
    """

    def __init__(self, pro: Any) -> None:
        self.pro = pro
        self.up = False
        self.epoch = 0
        self.drops = 0
        self.trades_received = 0
        self.orders_received = 0
        self._lock = threading.Lock()
        self._trades: list[dict[str, Any]] = []
        self._orders: list[dict[str, Any]] = []
        self._closing = False
        self._loop = ProLoop(pro, "ws-user")
        self._loop.spawn(self._run())

    async def _watch(self, kind: str) -> None:
        while True:
            if kind == "trades":
                rows = await self.pro.watch_my_trades()
            else:
                rows = await self.pro.watch_orders()
            with self._lock:  # copies: ccxt updates its cached orders in place
                if kind == "trades":
                    self._trades.extend(dict(r) for r in rows)
                    self.trades_received += len(rows)
                else:
                    self._orders.extend(dict(r) for r in rows)
                    self.orders_received += len(rows)

    async def _run(self) -> None:
        delay = 0.25
        while not self._closing:
            tasks: list[asyncio.Task[None]] = []
            try:
                if self.pro.markets is None:
                    await self.pro.load_markets()
                if callable(getattr(self.pro, "authenticate", None)):
                    await self.pro.authenticate()
                tasks = [asyncio.ensure_future(self._watch("trades")), asyncio.ensure_future(self._watch("orders"))]
                await asyncio.sleep(0)  # both watches registered on the subscribed connection
                with self._lock:
                    self.epoch += 1
                    self.up = True
                delay = 0.25
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
                for t in done:
                    t.result()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a dropped connection: REST takes over, the watch reconnects
                with self._lock:
                    self.up = False
                    self.drops += 1
                if self._closing:
                    return
                log.warning("ccxt.user_stream_dropped", extra={"error": str(exc)[:200], "retry_s": delay})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            finally:
                for t in tasks:
                    t.cancel()

    def state(self) -> tuple[bool, int]:
        """(up, epoch) read together."""
        with self._lock:
            return self.up, self.epoch

    def drain(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The trades and order updates received since the last drain, in arrival order."""
        with self._lock:
            trades, self._trades = self._trades, []
            orders, self._orders = self._orders, []
        return trades, orders

    def close(self) -> None:
        self._closing = True
        self._loop.close()


class CcxtExecutionClient(ExecutionClient):
    """Submit, cancel and track orders of one account on a ccxt venue; see the module docstring."""

    def __init__(self, config: CcxtVenueConfig, symbols: list[str], journal: OrderJournal, *,
                 exchange: Any = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self.journal = journal
        self.exchange = exchange if exchange is not None else make_ccxt(config)
        self._sleep = sleep
        self.consecutive_errors = 0  # venue errors in a row (a kill switch watches it)
        self.venue_errors = 0
        self.retries = 0
        self.ack_latency_s: list[float] = []  # sent -> acknowledged, per accepted submit
        self.sent_marks: list[float] = []  # perf_counter() as each create_order request leaves
        self.fill_latency_s: list[float] = []  # acknowledged -> fill booked, per fill of an order acked in this run
        self._acked_at: dict[str, float] = {}
        self.instruments = market_instruments(self.exchange, config.venue, symbols, config.policy())
        self.markets = {s: self.exchange.markets[s] for s in symbols}
        self._by_key = {i.key: i for i in self.instruments}
        self._last_trade_id: dict[str, int] = dict(journal.get("last_trade_id", {}) or {})
        for o in journal.open_orders():  # SUBMITTED is stored before sending: INITIALIZED never left this process
            if o.status is S.INITIALIZED:
                journal.record(o, S.REJECTED, _now(), reason="never sent: the trader stopped before submitting it")
        self._last_price: dict[str, float] = {}
        self.stream: UserStream | None = None
        self._stream_trades: list[dict[str, Any]] = []  # streamed trades whose order is not known yet
        self._gap_filled_epoch = -1
        self._next_rest_check = 0.0
        self.rest_polls = 0  # polls that went to REST (fallback, gap fill, safety net)
        if config.user_stream:
            pro = make_ccxt(config, require_keys=False, pro=True)
            if pro.has.get("watchMyTrades") and pro.has.get("watchOrders"):
                self.stream = UserStream(pro)
            else:
                log.info("ccxt.no_user_stream", extra={"venue": config.venue})

    def close(self) -> None:
        """Stop the user-data stream (if any)."""
        if self.stream is not None:
            self.stream.close()
            self.stream = None

    # --- the one boundary ---------------------------------------------------------------
    def call(self, what: str, fn: Callable[[], T], *, submit: bool = False) -> T:
        """``fn`` through :func:`ccxt_call`, counting venue errors (a kill switch watches them)."""
        try:
            out = ccxt_call(self.exchange, what, fn, self.config.policy(), submit=submit, sleep=self._sleep,
                            on_retry=self._retried)
        except (errors.RetryableError, AmbiguousSubmitError, errors.AuthenticationError):
            self.consecutive_errors += 1
            self.venue_errors += 1
            raise
        self.consecutive_errors = 0
        return out

    _call = call

    def _retried(self) -> None:
        self.retries += 1

    # --- instruments and precision -------------------------------------------------------
    def venue_cid(self, client_id: str) -> str:
        cid = f"{self.config.client_id_prefix}{client_id}"
        if not _CID.match(cid):
            raise errors.DataValidationError("client_id", cid, "must match ^[.A-Z:/a-z0-9_-]{1,36}$ at the venue")
        return cid

    def prepare(self, order: Order) -> tuple[float, float | None]:
        """(amount, price) rounded to the market's precision; OrderRejectedError naming the field if unsendable."""
        market = self.markets.get(order.symbol)
        if market is None:
            raise errors.OrderRejectedError(f"symbol={order.symbol!r}: not a market of this client")
        try:
            amount = float(self.exchange.amount_to_precision(order.symbol, order.qty))
        except Exception as exc:
            raise errors.OrderRejectedError(f"amount={order.qty!r}: {exc}") from exc
        price = None if order.price is None else float(self.exchange.price_to_precision(order.symbol, order.price))
        limits = market.get("limits") or {}
        min_amount = (limits.get("amount") or {}).get("min")
        if amount <= 0 or (min_amount is not None and amount < min_amount):
            raise errors.OrderRejectedError(
                f"amount={order.qty!r} (rounded {amount}) is below the market's minimum amount {min_amount}")
        ref = price if price is not None else self._last_price.get(order.instrument_key)
        min_cost = (limits.get("cost") or {}).get("min")
        if ref is not None and min_cost is not None and amount * ref < min_cost:
            raise errors.OrderRejectedError(
                f"notional={amount * ref:.8f} ({amount} x {ref}) is below the market's minimum notional {min_cost}")
        return amount, price

    def _emulates(self, order: Order) -> bool:
        if order.type is not OrderType.STOP:
            return False
        types = (self.markets[order.symbol].get("info") or {}).get("orderTypes") or []
        return "STOP_LOSS" not in types

    # --- ExecutionClient -------------------------------------------------------------------
    def submit(self, order: Order, ts: datetime) -> Order:
        owner = order.client_id.split("-", 1)[0]
        order = replace(order, status=S.INITIALIZED)
        try:
            amount, price = self.prepare(order)
            self.venue_cid(order.client_id)
        except (errors.OrderRejectedError, errors.DataValidationError) as exc:
            return self.journal.record(order, S.REJECTED, ts, reason=str(exc), owner=owner)
        order = replace(order, qty=amount, price=price)
        if self._emulates(order):
            return self.journal.record(order, S.ACCEPTED, ts, owner=owner, id=f"emulated:{order.client_id}",
                                       reason="stop emulated: sent at market once a bar trades through the trigger")
        self.journal.record(order, S.INITIALIZED, ts, owner=owner)
        return self._send(order, ts)

    def _send(self, order: Order, ts: datetime) -> Order:
        kind = "market" if order.type in (OrderType.MARKET, OrderType.STOP) else "limit"
        price = order.price if kind == "limit" else None
        sent = self.journal.record(order, S.SUBMITTED, ts)  # write-ahead: on disk before the request
        t0 = time.perf_counter()
        self.sent_marks.append(t0)
        try:
            resp = self._call("create_order", lambda: self.exchange.create_order(
                order.symbol, kind, str(order.side), order.qty, price,
                {"clientOrderId": self.venue_cid(order.client_id)}), submit=True)
        except AmbiguousSubmitError as exc:
            log.warning("ccxt.submit_ambiguous", extra={"client_id": order.client_id, "error": str(exc)})
            self.journal.record(sent, S.UNKNOWN, _now(), reason=f"ambiguous submit: {exc}")
            return self.resolve(order.client_id)
        except errors.RetryableError as exc:  # 429 to the end: the venue refused before processing
            return self.journal.record(sent, S.REJECTED, _now(), reason=f"venue busy: {exc}")
        except errors.ExchangeError as exc:
            return self.journal.record(sent, S.REJECTED, _now(), reason=str(exc))
        self._acked_at[order.client_id] = time.perf_counter()
        self.ack_latency_s.append(self._acked_at[order.client_id] - t0)
        return self._apply(sent, resp)

    def _apply(self, order: Order, resp: dict[str, Any]) -> Order:
        status = _STATUS.get(str(resp.get("status")), S.ACCEPTED)
        filled = float(resp.get("filled") or 0.0)
        if status is S.ACCEPTED and filled > 0:
            status = S.PARTIALLY_FILLED
        cur = self.journal.orders[order.client_id]
        if cur.status is S.PENDING_CANCEL and status in (S.ACCEPTED, S.PARTIALLY_FILLED):
            status = cur.status  # the cancel is on its way
        if cur.status in TERMINAL:
            return replace(cur)
        ts = datetime.fromtimestamp(resp["lastTradeTimestamp"] / 1000, UTC) if resp.get("lastTradeTimestamp") \
            else _now()
        return self.journal.record(cur, status, ts, id=str(resp["id"]), filled_qty=filled,
                                   avg_fill_price=resp.get("average"))

    def resolve(self, client_id: str) -> Order:
        """Settle an UNKNOWN/SUBMITTED order by looking its client order id up at the venue."""
        order = self.journal.orders[client_id]
        if order.status not in (S.UNKNOWN, S.SUBMITTED):
            return replace(order)
        if order.status is S.SUBMITTED:  # a crash mid-send: the same doubt as a timeout
            order = self.journal.record(order, S.UNKNOWN, _now(), reason="restart found it mid-submit")
        try:
            resp = self._call("fetch_order", lambda: self.exchange.fetch_order(
                None, order.symbol, {"clientOrderId": self.venue_cid(client_id)}))
        except errors.OrderNotFoundError:
            assert order.updated_at is not None
            void_after = order.updated_at.timestamp() + (self.config.recv_window_ms + 1000) / 1000
            if time.time() > void_after:
                return self.journal.record(order, S.REJECTED, _now(),
                                           reason="never reached the venue (unknown by client id after recvWindow)")
            return replace(order)
        except errors.CryptolakeError as exc:
            log.warning("ccxt.resolve_failed", extra={"client_id": client_id, "error": str(exc)})
            return replace(order)
        return self._apply(order, resp)

    def cancel(self, client_id: str, ts: datetime) -> Order | None:
        order = self.journal.orders.get(client_id)
        if order is None or not order.is_open:
            return None
        if order.id.startswith("emulated:") or order.status is S.INITIALIZED:
            return self.journal.record(order, S.CANCELED, ts, reason="cancelled before it was sent")
        if order.status in (S.UNKNOWN, S.SUBMITTED):
            order = self.resolve(client_id)
            if not order.is_open or order.status is S.UNKNOWN:
                return None if not order.is_open else replace(order)
        pending = self.journal.record(order, S.PENDING_CANCEL, ts)
        try:
            resp = self._call("cancel_order", lambda: self.exchange.cancel_order(order.id, order.symbol))
        except errors.OrderNotFoundError:  # filled (or cancelled) in between: take the venue's final state
            return self.refresh(client_id)
        except errors.CryptolakeError as exc:
            log.warning("ccxt.cancel_failed", extra={"client_id": client_id, "error": str(exc)})
            return replace(pending)
        return self._apply(pending, resp)

    def refresh(self, client_id: str) -> Order:
        """The venue's current view of one order, stored."""
        order = self.journal.orders[client_id]
        if order.status in (S.UNKNOWN, S.SUBMITTED):
            return self.resolve(client_id)
        if not order.id or order.id.startswith("emulated:"):
            return replace(order)
        resp = self._call("fetch_order", lambda: self.exchange.fetch_order(order.id, order.symbol))
        return self._apply(order, resp)

    def query(self, client_id: str) -> Order:
        try:
            return replace(self.journal.orders[client_id])
        except KeyError as exc:
            raise errors.OrderNotFoundError(f"no order with client_id={client_id!r}") from exc

    def open_orders(self, instrument_key: str | None = None) -> list[Order]:
        return [o for o in self.journal.open_orders() if instrument_key is None or o.instrument_key == instrument_key]

    # --- fills and order updates (user-data stream; REST polling as the fallback) ------------
    def poll(self, on_fill: FillHandler, bar: Bar | None = None) -> int:
        """Resolve doubtful orders, adopt new venue fills, update open orders; returns fills adopted.

        From the user-data stream while it is up and its gap was filled; otherwise by REST.
        """
        if bar is not None:
            self._last_price[bar.instrument_key] = bar.close
            self._trigger_stops(bar)
        for o in self.journal.open_orders():
            if o.status in (S.UNKNOWN, S.SUBMITTED):
                self.resolve(o.client_id)
        up, epoch = self.stream.state() if self.stream is not None else (False, 0)
        n = 0
        if not up or epoch != self._gap_filled_epoch or time.monotonic() >= self._next_rest_check:
            n += self._poll_rest(on_fill)
            if up:  # REST started after this subscription: the stream carries everything from here
                self._gap_filled_epoch = epoch
                self._next_rest_check = time.monotonic() + self.config.rest_check_s
        if self.stream is not None:
            n += self._drain_stream(on_fill)
        self._cancel_oco_siblings()
        return n

    def _poll_rest(self, on_fill: FillHandler, open_rows: dict[str, list[dict[str, Any]]] | None = None) -> int:
        """Adopt new trades, then refresh each journal-open order missing from the venue's open orders
        (``open_rows``, read now if not given). Returns the trades adopted plus the orders that changed."""
        self.rest_polls += 1
        n = 0
        for symbol in self.markets:
            n += self._adopt_trades(symbol, on_fill)
        rows = open_rows if open_rows is not None else self._fetch_open_rows()
        venue_open = {(str(r["symbol"]), str(r["id"])) for s in rows for r in rows[s]}
        for o in self.journal.open_orders():
            if o.status in (S.ACCEPTED, S.PARTIALLY_FILLED, S.PENDING_CANCEL) and not o.id.startswith("emulated:") \
                    and (o.symbol, o.id) not in venue_open:
                now = self.refresh(o.client_id)
                n += int((now.status, now.filled_qty) != (o.status, o.filled_qty))
        return n

    def _fetch_open_rows(self) -> dict[str, list[dict[str, Any]]]:
        return {s: self._call("fetch_open_orders", partial(self.exchange.fetch_open_orders, s)) for s in self.markets}

    def _drain_stream(self, on_fill: FillHandler) -> int:
        """Book streamed trades (a trade of an order not known yet waits for the next poll), then apply the
        streamed order updates that move an order forward."""
        assert self.stream is not None
        trades, updates = self.stream.drain()
        by_venue_id = {(o.symbol, o.id): o for o in self.journal.orders.values() if o.id}
        n, waiting = 0, []
        for t in self._stream_trades + trades:
            if t.get("symbol") not in self.markets:
                continue
            order = by_venue_id.get((str(t["symbol"]), str(t["order"])))
            if order is None:
                if int(t["id"]) > self._last_trade_id.get(str(t["symbol"]), -1):
                    waiting.append(t)  # REST's cursor has not passed it: it may still become ours
                continue
            n += self._book(order, t, on_fill)
        self._stream_trades = waiting[-10_000:]
        prefix = self.config.client_id_prefix
        for r in updates:
            cid = str(r.get("clientOrderId") or "")
            cur = self.journal.orders.get(cid[len(prefix):]) if cid.startswith(prefix) else None
            if cur is None or cur.symbol != r.get("symbol") or cur.status in TERMINAL or cur.id.startswith("emulated:"):
                continue
            filled = float(r.get("filled") or 0.0)
            if filled < cur.filled_qty or (cur.id and cur.id != str(r.get("id"))):
                continue  # an older update than what the journal holds (or another order of that client id)
            if r.get("status") == "open" and filled == cur.filled_qty and cur.id:
                continue  # nothing new
            try:
                self._apply(cur, r)
            except IllegalTransitionError as exc:  # REST's refresh settles it
                log.info("ccxt.stream_update_skipped", extra={"client_id": cur.client_id, "error": str(exc)})
        return n

    def _adopt_trades(self, symbol: str, on_fill: FillHandler) -> int:
        by_venue_id = {o.id: o for o in self.journal.orders.values() if o.symbol == symbol and o.id}
        since = self._last_trade_id.get(symbol)
        params = {"fromId": since + 1} if since is not None else {}
        trades = self._call("fetch_my_trades", lambda: self.exchange.fetch_my_trades(symbol, None, 1000, params))
        n = 0
        for t in sorted(trades, key=lambda t: int(t["id"])):
            tid = int(t["id"])
            order = by_venue_id.get(str(t["order"]))
            if order is None:  # an order still in doubt (or not ours): the cursor waits here, nothing is skipped
                log.warning("ccxt.unmatched_trade", extra={"symbol": symbol, "trade_id": tid, "order": t["order"]})
                break
            self._last_trade_id[symbol] = max(tid, self._last_trade_id.get(symbol, tid))
            n += self._book(order, t, on_fill)
        self.journal.put(last_trade_id=self._last_trade_id)
        return n

    def _book(self, order: Order, t: dict[str, Any], on_fill: FillHandler) -> int:
        """THE way a venue trade (REST or stream) becomes a fill: once per trade id (the journal keeps them)."""
        fill = self.fill_of(order, t)
        if not self.journal.record_fill(fill):
            return 0
        if order.client_id in self._acked_at:
            self.fill_latency_s.append(time.perf_counter() - self._acked_at[order.client_id])
        on_fill(fill)
        return 1

    def fill_of(self, order: Order, t: dict[str, Any]) -> Fill:
        """Our fill for a ccxt trade; a fee in the base asset is booked as net quantity + quote-valued fee."""
        market = self.markets[order.symbol]
        price, qty = Decimal(str(t["price"])), Decimal(str(t["amount"]))
        fee = t.get("fee") or {}
        fee_cost, fee_ccy = Decimal(str(fee.get("cost") or 0)), str(fee.get("currency") or market["quote"])
        if fee_ccy == market["base"]:
            qty, fee_quote = qty - fee_cost, fee_cost * price
        else:
            fee_quote = fee_cost
        liquidity = Liquidity.MAKER if t.get("takerOrMaker") == "maker" else Liquidity.TAKER
        return Fill(f"{self.config.venue}-{t['id']}", order.id, order.client_id, order.exchange, order.symbol,
                    Side(str(t["side"])), float(price), float(qty), float(round(fee_quote, 8)), str(market["quote"]),
                    datetime.fromtimestamp(int(t["timestamp"]) / 1000, UTC), liquidity, order.tag)

    def _trigger_stops(self, bar: Bar) -> None:
        for o in self.journal.open_orders():
            if o.instrument_key != bar.instrument_key or not o.id.startswith("emulated:") or o.price is None:
                continue
            hit = bar.low <= o.price if o.side is Side.SELL else bar.high >= o.price
            if hit:
                self._send(o, _now())

    def _cancel_oco_siblings(self) -> None:
        done = {o.oco_group for o in self.journal.orders.values()
                if o.oco_group and o.filled_qty > 0}
        for o in self.journal.open_orders():
            if o.oco_group in done and o.filled_qty == 0:
                self.cancel(o.client_id, _now())

    # --- reconciliation ----------------------------------------------------------------------
    def balances(self) -> dict[str, float]:
        """Total balance per asset at the venue (``fetch_balance``)."""
        raw = self._call("fetch_balance", self.exchange.fetch_balance)
        return {k: float(v) for k, v in (raw.get("total") or {}).items() if v is not None}

    def reconcile(self, on_fill: FillHandler | None = None) -> ReconcileReport:
        """Venue open orders (ours: by client id prefix), positions (balance - baseline) and fills adopted.

        With ``on_fill``, one snapshot is the balances, then the open orders, then the trades and the
        orders that left the open list since: if that last read changed anything (a resting order filled
        or was cancelled meanwhile), the snapshot is taken again (up to ``RECONCILE_READS`` times), so
        an order finishing during the reads is not a mismatch. If every read saw a change (fills arriving
        faster than a read, e.g. on a loaded machine), the report is not ``settled``.
        """
        settled = False
        for _ in range(RECONCILE_READS):
            bal = self.balances()
            rows = self._fetch_open_rows()
            if on_fill is None or not self._poll_rest(on_fill, rows):
                settled = True
                break
        baseline = self.journal.get("baseline")
        if baseline is None:
            baseline = {a: bal.get(a, 0.0) for m in self.markets.values() for a in (m["base"], m["quote"])}
            self.journal.put(baseline=baseline)
        positions, tolerance = {}, {}
        for inst in self.instruments:
            m = self.markets[inst.symbol]
            qty = round(bal.get(m["base"], 0.0) - baseline[m["base"]], 8)
            if qty:
                positions[inst.key] = qty
            tolerance[inst.key] = float(m["precision"]["amount"]) / 2
        opened = []
        for s in self.markets:
            for r in rows[s]:
                cid = str(r.get("clientOrderId") or "")
                ours = cid.startswith(self.config.client_id_prefix)
                known = self.journal.orders.get(cid[len(self.config.client_id_prefix):]) if ours else None
                opened.append(known if known is not None else _foreign(r, self.config.venue))
        quote = {self.markets[s]["quote"] for s in self.markets}
        cash = {q: round(bal.get(q, 0.0), 8) for q in quote}
        local = tuple(o.client_id for o in self.journal.open_orders() if o.id.startswith("emulated:"))
        return ReconcileReport(tuple(opened), positions, len(self.journal.fill_ids), tolerance=tolerance,
                               cash=cash, halt_on_mismatch=True, local_orders=local, settled=settled)


def _foreign(r: dict[str, Any], venue: str) -> Order:
    ts = datetime.fromtimestamp(int(r.get("timestamp") or 0) / 1000, UTC)
    kind = OrderType.LIMIT if r.get("type") == "limit" else OrderType.MARKET
    return Order(str(r.get("clientOrderId") or r["id"]), venue, str(r["symbol"]), Side(str(r["side"])), kind,
                 float(r["amount"]), r.get("price"), ts, S.ACCEPTED, str(r["id"]), tag="foreign",
                 filled_qty=float(r.get("filled") or 0.0))


def _now() -> datetime:
    return datetime.now(UTC)
