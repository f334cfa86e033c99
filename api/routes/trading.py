"""Runs, orders, fills, positions and the equity curve (viewer and above)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Path

from api.auth import Principal, Role
from api.deps import Services, require, services
from api.routes import errors
from api.schemas import EquityRow, FillRow, OrderRow, PositionRow, RunSummary

router = APIRouter(tags=["trading"])
RUN_ID = Path(min_length=1, max_length=128, description="A trading run's id")
_ERRORS = errors(401, 403, 404)
viewer = require(Role.VIEWER)


def _known(svc: Services, run_id: str) -> None:
    if not svc.data.exists(run_id):
        raise HTTPException(404, f"run_id={run_id!r}: no such run")


@router.get("/runs", response_model=list[RunSummary], responses=_ERRORS)
def list_runs(_: Principal = Depends(viewer), svc: Services = Depends(services)) -> list[RunSummary]:
    """Trading runs, newest first."""
    return [RunSummary(**r) for r in svc.data.runs()]


@router.get("/runs/{run_id}/orders", response_model=list[OrderRow], responses=_ERRORS)
def run_orders(run_id: str = RUN_ID, _: Principal = Depends(viewer),
               svc: Services = Depends(services)) -> list[OrderRow]:
    """Every order of a run with its state."""
    _known(svc, run_id)
    return [OrderRow(**{k: r.get(k) for k in OrderRow.model_fields}) for r in svc.data.orders(run_id)]


@router.get("/runs/{run_id}/fills", response_model=list[FillRow], responses=_ERRORS)
def run_fills(run_id: str = RUN_ID, _: Principal = Depends(viewer),
              svc: Services = Depends(services)) -> list[FillRow]:
    """Every fill of a run, oldest first."""
    _known(svc, run_id)
    return [FillRow(**{k: r.get(k) for k in FillRow.model_fields}) for r in svc.data.fills(run_id)]


@router.get("/runs/{run_id}/positions", response_model=list[PositionRow], responses=_ERRORS)
def run_positions(run_id: str = RUN_ID, _: Principal = Depends(viewer),
                  svc: Services = Depends(services)) -> list[PositionRow]:
    """The run's positions."""
    _known(svc, run_id)
    return [PositionRow(**{k: r.get(k) for k in PositionRow.model_fields}) for r in svc.data.positions(run_id)]


@router.get("/runs/{run_id}/equity", response_model=list[EquityRow], responses=_ERRORS)
def run_equity(run_id: str = RUN_ID, _: Principal = Depends(viewer),
               svc: Services = Depends(services)) -> list[EquityRow]:
    """The equity curve (equity, cash, exposure and risk state per bar)."""
    _known(svc, run_id)
    return [EquityRow(**{k: r.get(k) for k in EquityRow.model_fields}) for r in svc.data.equity(run_id)]
