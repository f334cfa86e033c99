"""HTTP hardening: security headers on every response, per-client rate limits, and CSRF for cookie auth.

The access token travels in the ``Authorization`` header only, so only the endpoints that read the
refresh cookie (refresh, logout) can be forged cross-site; they require the double-submit CSRF header.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.types import ASGIApp

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; manifest-src 'self'; worker-src 'self'; object-src 'none'; "
       "base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
REFRESH_COOKIE = "cl_refresh"
CSRF_COOKIE = "cl_csrf"
CSRF_HEADER = "x-csrf-token"


def security_headers(https: bool, hsts_max_age_s: int) -> dict[str, str]:
    """The headers every response carries (HSTS only over HTTPS, where browsers honour it)."""
    headers = {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
    }
    if https:
        headers["Strict-Transport-Security"] = f"max-age={hsts_max_age_s}; includeSubDomains"
    return headers


class SecurityHeaders(BaseHTTPMiddleware):
    def __init__(self, app: ASGIApp, headers: dict[str, str]) -> None:
        super().__init__(app)
        self.headers = headers

    async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        for key, value in self.headers.items():
            response.headers.setdefault(key, value)
        if request.url.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response


@dataclass
class RateLimiter:
    """A token bucket per key: ``per_min`` requests a minute, bursts up to the same number."""

    per_min: int
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, key: str) -> float | None:
        """``None`` if allowed, else the seconds until the next request would be."""
        rate = self.per_min / 60.0
        with self._lock:
            now = self.clock()
            tokens, last = self._buckets.get(key, (float(self.per_min), now))
            tokens = min(float(self.per_min), tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return None
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / rate


def client_key(request: Request) -> str:
    """The caller's address (the API is meant to sit directly on HTTPS, not behind a proxy it trusts)."""
    return request.client.host if request.client else "unknown"


class RateLimit(BaseHTTPMiddleware):
    """429 with Retry-After beyond the general limit, or beyond the login limit on the login endpoint."""

    def __init__(self, app: ASGIApp, general: RateLimiter, login: RateLimiter, login_path: str) -> None:
        super().__init__(app)
        self.general = general
        self.login = login
        self.login_path = login_path

    async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        key = client_key(request)
        wait = self.general.take(key)
        if wait is None and request.url.path == self.login_path:
            wait = self.login.take(key)
        if wait is not None:
            return JSONResponse({"detail": "rate limit exceeded"}, status_code=429,
                                headers={"Retry-After": str(max(1, int(wait + 0.999)))})
        return await call_next(request)


def csrf_ok(request: Request) -> bool:
    """The double-submit check: the CSRF header equals the CSRF cookie (both present)."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    header = request.headers.get(CSRF_HEADER, "")
    return bool(cookie) and hmac.compare_digest(cookie, header)
