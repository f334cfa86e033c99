"""Model health (champion, drift) and the market regime with the selected strategy (viewer and above)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from starlette.concurrency import run_in_threadpool

from api.auth import Principal, Role
from api.deps import Services, require, services
from api.insights import current_regime, model_health
from api.routes import errors
from api.schemas import AlertRow, ModelHealth, RegimeState
from cryptolake.errors import DataValidationError
from cryptolake.types import from_ms

router = APIRouter(tags=["insights"])
viewer = require(Role.VIEWER)


@router.get("/models", response_model=ModelHealth, responses=errors(401, 403))
async def models(window: int = Query(200, ge=20, le=5000, description="Signals per side of the drift test"),
                 _: Principal = Depends(viewer), svc: Services = Depends(services)) -> ModelHealth:
    """Registered model versions, the champion now, and the drift of the champion's signals."""
    now = from_ms(int(svc.auth.clock() * 1000))
    return ModelHealth(**await run_in_threadpool(model_health, svc.settings, now, window))


@router.get("/regime", response_model=RegimeState, responses=errors(401, 403, 404))
async def regime(symbol: str | None = Query(None, min_length=1, max_length=32, description="Default: the market's"),
                 exchange: str | None = Query(None, min_length=1, max_length=64),
                 timeframe: str | None = Query(None, min_length=1, max_length=8),
                 bars: int = Query(500, ge=50, le=5000, description="Bars of history for the timeline"),
                 _: Principal = Depends(viewer), svc: Services = Depends(services)) -> RegimeState:
    """The regime at the last valid bar, the strategy the selector prefers and has selected, its switches."""
    m = svc.settings.market
    try:
        found = await run_in_threadpool(current_regime, svc.settings, exchange or m.exchange, symbol or m.symbols[0],
                                        timeframe or m.timeframe, bars)
    except DataValidationError as exc:
        raise HTTPException(404, str(exc)) from exc
    return RegimeState(**found)


@router.get("/alerts", response_model=list[AlertRow], responses=errors(401, 403))
def recent_alerts(request: Request, _: Principal = Depends(viewer)) -> list[AlertRow]:
    """The alerts the dashboard's watch raised (stale data, model promotions), newest first."""
    return [AlertRow(**a) for a in request.app.state.monitor.recent()]
