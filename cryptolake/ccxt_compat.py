"""The ccxt boundary: URL redirection to the local exchange and error translation (one translation for
the market connectors in ``ingest`` and the execution client in ``trader``).

``point_ccxt_at`` rewrites EVERY key of ``exchange.urls['api']`` (REST and websocket,
nested dicts included) so no request can leak to the real venue. ``translate`` maps ccxt's
exception classes onto cryptolake's: network trouble, rate limits and unavailability are
retryable (as is ccxt's ``OperationFailed`` family, e.g. Binance -1001 "Internal error; try again");
everything else is fatal.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any
from urllib.parse import urlparse

import ccxt

from cryptolake import errors
from cryptolake.logs import get_logger

_log = get_logger(__name__)


def _rewrite(url: str, http_base: str, ws_base: str) -> str:
    parsed = urlparse(url)
    path = parsed.path
    if parsed.scheme in ("ws", "wss"):
        # ccxt.pro's binance treats a client URL containing '/stream' as spot; the local
        # exchange serves Binance's combined-stream format there.
        if path.endswith("/ws") and "ws-api" not in path and "/stream" not in parsed.netloc + path:
            path = "/stream"
        return ws_base + path
    return http_base + path


def point_ccxt_at(exchange: Any, base_url: str) -> Any:
    """Point every API URL of a ccxt (or ccxt.pro) exchange at ``base_url``; returns the exchange."""
    http_base = base_url.rstrip("/")
    ws_base = "ws" + http_base[len("http"):] if http_base.startswith("http") else http_base

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, str):
            return _rewrite(node, http_base, ws_base)
        return node

    exchange.urls = dict(exchange.urls)
    exchange.urls["api"] = walk(exchange.urls["api"])
    leaked = [u for u in _all_strings(exchange.urls["api"]) if not u.startswith((http_base, ws_base))]
    if leaked:
        raise errors.ConfigError(f"point_ccxt_at left URLs pointing elsewhere: {leaked}")
    return exchange


def _all_strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in _all_strings(v)]
    return [node] if isinstance(node, str) else []


def _retry_after(exchange: Any) -> float | None:
    headers = getattr(exchange, "last_response_headers", None) or {}
    for key, value in dict(headers).items():
        if str(key).lower() == "retry-after":
            try:
                return float(value)
            except (TypeError, ValueError):
                return None
    return None


def translate(exc: BaseException, what: str, exchange: Any = None) -> errors.CryptolakeError:
    """The cryptolake error for a ccxt exception (raise it ``from exc``)."""
    msg = f"{what}: {type(exc).__name__}: {exc}"
    if isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection):
        return errors.RateLimitedError(msg, retry_after=_retry_after(exchange))
    if isinstance(exc, ccxt.OnMaintenance | ccxt.ExchangeNotAvailable):
        return errors.ServiceUnavailableError(msg, retry_after=_retry_after(exchange))
    if isinstance(exc, ccxt.RequestTimeout | ccxt.NetworkError | ccxt.InvalidNonce):
        return errors.NetworkError(msg)
    if isinstance(exc, ccxt.OperationFailed):
        # ccxt's "temporary, try again" family (e.g. Binance -1001 "Internal error"): the venue is not serving.
        return errors.ServiceUnavailableError(msg, retry_after=_retry_after(exchange))
    if isinstance(exc, ccxt.AuthenticationError | ccxt.PermissionDenied | ccxt.AccountSuspended):
        return errors.AuthenticationError(msg)
    if isinstance(exc, ccxt.InsufficientFunds):
        return errors.InsufficientFundsError(msg)
    if isinstance(exc, ccxt.OrderNotFound):
        return errors.OrderNotFoundError(msg)
    if isinstance(exc, ccxt.InvalidOrder):
        return errors.OrderRejectedError(msg)
    if isinstance(exc, ccxt.BaseError):
        return errors.ExchangeError(msg)
    if isinstance(exc, TimeoutError | ConnectionError | OSError):
        return errors.NetworkError(msg)
    return errors.ExchangeError(msg)


class ProLoop:
    """A ccxt.pro exchange's own event loop on a daemon thread: the trader's loop is synchronous, ccxt.pro's
    watches are coroutines. ``spawn`` schedules one there; ``close`` cancels them, closes the exchange's
    connections and stops the loop (closing is best effort: the loop stops regardless)."""

    def __init__(self, pro: Any, name: str) -> None:
        self.pro = pro
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()
        self._futures: list[concurrent.futures.Future[Any]] = []

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        self._futures.append(fut)
        return fut

    def close(self) -> None:
        for fut in self._futures:
            fut.cancel()
        try:
            asyncio.run_coroutine_threadsafe(self.pro.close(), self._loop).result(timeout=5)
        except Exception as exc:  # the loop stops regardless; said, not raised
            _log.info("ccxt.pro_close_failed", extra={"loop": self._thread.name, "error": str(exc)[:200]})
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
