"""Backtests: start one (trader and above), list them and open their tearsheets (viewer and above)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import ValidationError

from api.audit import audit
from api.auth import Principal, Role
from api.backtests import BacktestBusyError
from api.deps import Services, require, services
from api.routes import errors
from api.schemas import BacktestJobRow, BacktestList, BacktestRequest, BacktestRun
from api.security import client_key
from cryptolake.errors import ConfigError
from trader.config import TraderConfig
from trader.strategies.registry import resolve_strategy

router = APIRouter(prefix="/backtests", tags=["backtests"])
viewer, trader = require(Role.VIEWER), require(Role.TRADER)
RUN_ID = Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+:-]*$", description="A backtest run")
#: A tearsheet is the pipeline's own HTML (inline style and script): it is sandboxed, never run as the app.
TEARSHEET_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"


@router.post("", response_model=BacktestJobRow, status_code=202, responses=errors(401, 403, 409))
def start_backtest(body: BacktestRequest, request: Request, who: Principal = Depends(trader),
                   svc: Services = Depends(services)) -> BacktestJobRow | JSONResponse:
    """Start a backtest of one strategy over the lake's bars; poll the list for its status."""
    m = svc.settings.market
    try:  # the strategy's own config class first, so an error names the body's field
        strategy = resolve_strategy(str(body.strategy.get("kind", ""))).Config.model_validate(body.strategy)
        config = TraderConfig.model_validate({"exchange": m.exchange, "symbols": tuple(body.symbols or m.symbols),
                                              "timeframe": m.timeframe, "price_decimals": 8,
                                              "initial_cash": body.cash, "strategies": (strategy,)})
    except ValidationError as exc:
        fields = [{"field": _field(e["loc"]), "problem": e["msg"]} for e in exc.errors()]
        return JSONResponse({"detail": "invalid request", "errors": fields}, status_code=422)
    except ConfigError as exc:
        return JSONResponse({"detail": "invalid request", "errors": [{"field": "strategy.kind", "problem": str(exc)}]},
                            status_code=422)
    if body.start is not None and body.end is not None and body.end <= body.start:
        problem = [{"field": "end", "problem": "must be after start"}]
        return JSONResponse({"detail": "invalid request", "errors": problem}, status_code=422)
    try:
        job = svc.backtests.start(config, body.start, body.end, who.username)
    except BacktestBusyError as exc:
        raise HTTPException(409, str(exc)) from exc
    audit(svc.engine, "backtest.start", "ok", username=who.username, client=client_key(request),
          detail={"job": job.id, "strategy": job.strategy, "symbols": job.symbols})
    return BacktestJobRow(**svc.backtests.as_row(job))


def _field(loc: tuple[Any, ...]) -> str:
    """A TraderConfig error location as the request's field (strategies.0.x is the body's strategy.x)."""
    parts = [str(p) for p in loc]
    if parts[:2] == ["strategies", "0"]:
        return ".".join(["strategy", *parts[2:]])
    if parts[0] in ("symbols", "initial_cash"):
        return "cash" if parts[0] == "initial_cash" else ".".join(parts)
    return ".".join(["strategy", *parts])


@router.get("", response_model=BacktestList, responses=errors(401, 403))
def list_backtests(_: Principal = Depends(viewer), svc: Services = Depends(services)) -> BacktestList:
    """The dashboard's jobs (newest first) and every backtest run in the trading store."""
    runs = [BacktestRun(run_id=r["run_id"], status=r["status"], last_event=r["last_event"],
                        tearsheet=svc.backtests.tearsheet(r["run_id"]) is not None)
            for r in svc.data.runs(500) if r["mode"] == "backtest"]
    return BacktestList(jobs=[BacktestJobRow(**svc.backtests.as_row(j)) for j in svc.backtests.listed()], runs=runs)


@router.get("/{run_id}/tearsheet", response_class=FileResponse, responses={
    **errors(401, 403, 404), 200: {"content": {"text/html": {"schema": {"type": "string"}}}}})
def tearsheet(run_id: str = RUN_ID, _: Principal = Depends(viewer), svc: Services = Depends(services)) -> FileResponse:
    """The run's tearsheet (HTML: equity against buy-and-hold, metrics, trades)."""
    path = svc.backtests.tearsheet(run_id)
    if path is None:
        raise HTTPException(404, f"run_id={run_id!r}: no tearsheet")
    headers = {"Content-Security-Policy": TEARSHEET_CSP, "Content-Disposition": "inline; filename=tearsheet.html"}
    return FileResponse(path, media_type="text/html", headers=headers)
