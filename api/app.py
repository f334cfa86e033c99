"""The FastAPI application: versioned routes under ``/api/v1``, hardened middleware, the built UI."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from api.auth import AuthService
from api.backtests import BacktestJobs
from api.data import TradingData
from api.db import db_url, make_engine
from api.deps import Services
from api.monitor import Monitor
from api.routes import admin, auth, backtests, controls, insights, live, pipeline, trading
from api.schemas import Health
from api.security import RateLimit, RateLimiter, SecurityHeaders, security_headers
from cryptolake import __version__
from cryptolake.logs import get_logger, register_secret
from cryptolake.secrets import read_secret
from cryptolake.settings import Settings, get_settings
from trader.config import TraderSettings
from trader.store import TradeStore

log = get_logger(__name__)
PREFIX = "/api/v1"
JWT_ENV = "CRYPTOLAKE_API_JWT_SECRET"


def jwt_secret(settings: Settings) -> str:
    """The signing key: from the environment (or its _FILE), else a random one kept in state_dir (mode 0600)."""
    value = read_secret(JWT_ENV)
    if value:
        return value
    path = settings.paths.state_dir / "api" / "jwt.secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    value = path.read_text(encoding="utf-8").strip()
    register_secret(value)
    return value


def build_services(settings: Settings, trader: TraderSettings | None = None) -> Services:
    """The database, the auth service and the trading-store reader of one app."""
    engine = make_engine(db_url(settings))
    store_url = settings.api.store_url or (trader or TraderSettings()).resolved_store_url(settings)
    return Services(settings=settings, engine=engine, auth=AuthService(engine, settings.api, jwt_secret(settings)),
                    data=TradingData(TradeStore(store_url)), backtests=BacktestJobs(settings, store_url))


def create_app(svc: Services | None = None) -> FastAPI:
    """The app; ``svc`` defaults to services built from the process settings."""
    svc = svc or build_services(get_settings())
    cfg = svc.settings.api
    monitor = Monitor(svc.settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(monitor.run(svc.auth.clock))  # stale data, model promotions
        yield
        task.cancel()

    app = FastAPI(title="cryptolake", version=__version__, openapi_url=f"{PREFIX}/openapi.json",
                  docs_url=None, redoc_url=None, lifespan=lifespan,
                  description="Monitoring and control of cryptolake's trading. Bearer tokens from /auth/login.")
    app.state.services = svc
    app.state.monitor = monitor
    app.add_middleware(RateLimit, general=RateLimiter(cfg.rate_limit_per_min),
                       login=RateLimiter(cfg.login_rate_per_min), login_path=f"{PREFIX}/auth/login")
    if cfg.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(cfg.cors_origins), allow_credentials=True,
                           allow_methods=["GET", "POST", "PUT", "DELETE"],
                           allow_headers=["authorization", "content-type", "x-csrf-token"])
    app.add_middleware(SecurityHeaders, headers=security_headers(cfg.https, cfg.hsts_max_age_s))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Name the field and the problem; never echo the value (it may be a password).
        fields = [{"field": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")}
                  for e in exc.errors()]
        return JSONResponse({"detail": "invalid request", "errors": fields}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code != 405:
            return await http_exception_handler(request, exc)
        # Starlette names only the first route of the path; a path with a GET and a POST route needs both.
        allowed: set[str] = set()
        for route in request.app.routes:
            if isinstance(route, APIRoute) and route.matches(request.scope)[0] is not Match.NONE:
                allowed |= route.methods
        return JSONResponse({"detail": exc.detail}, status_code=405, headers={"Allow": ", ".join(sorted(allowed))})

    @app.get(f"{PREFIX}/health", response_model=Health, tags=["health"])
    def health() -> Health:
        """Liveness, without authentication."""
        return Health(status="ok", version=__version__)

    app.include_router(auth.router, prefix=PREFIX)
    app.include_router(trading.router, prefix=PREFIX)
    app.include_router(admin.router, prefix=PREFIX)
    app.include_router(live.router, prefix=PREFIX)
    app.include_router(pipeline.router, prefix=PREFIX)
    app.include_router(controls.router, prefix=PREFIX)
    app.include_router(insights.router, prefix=PREFIX)
    app.include_router(backtests.router, prefix=PREFIX)
    _serve_ui(app, Path(__file__).parent / "static")
    return app


def _serve_ui(app: FastAPI, static: Path) -> None:
    """One GET route per file of the page, so nothing under /api/ can fall through to the files
    (an unknown method on an API path stays a 405 that lists the path's methods)."""
    from fastapi.responses import FileResponse

    types = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml",
             ".webmanifest": "application/manifest+json"}
    for file in sorted(static.iterdir()) if static.is_dir() else []:
        def send(path: Path = file) -> FileResponse:
            return FileResponse(path, media_type=types.get(path.suffix, "application/octet-stream"))

        app.add_api_route(f"/{file.name}", send, methods=["GET"], include_in_schema=False)
        if file.name == "index.html":
            app.add_api_route("/", send, methods=["GET"], include_in_schema=False)
