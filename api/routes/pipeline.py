"""Pipeline health: how fresh each lake table is (viewer and above)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from api.auth import Principal, Role
from api.deps import Services, require, services
from api.lake import freshness
from api.routes import errors
from api.schemas import TableFreshness
from cryptolake.types import from_ms

router = APIRouter(prefix="/pipeline", tags=["pipeline"])


@router.get("/freshness", response_model=list[TableFreshness], responses=errors(401, 403))
async def table_freshness(_: Principal = Depends(require(Role.VIEWER)),
                          svc: Services = Depends(services)) -> list[TableFreshness]:
    """Every lake table's version, last commit time and age, oldest first."""
    now = from_ms(int(svc.auth.clock() * 1000))
    rows = await run_in_threadpool(freshness, svc.settings, now)
    return [TableFreshness(**r) for r in rows]
