"""The audit log and the users (admin only)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from api.audit import audit_rows
from api.auth import Principal, Role
from api.deps import Services, require, services
from api.routes import errors
from api.schemas import AuditRow, UserRow
from cryptolake.types import from_ms

router = APIRouter(tags=["admin"])
_ERRORS = errors(401, 403)
admin = require(Role.ADMIN)


@router.get("/audit", response_model=list[AuditRow], responses=_ERRORS)
def audit_log(limit: int = Query(200, ge=1, le=5000), _: Principal = Depends(admin),
              svc: Services = Depends(services)) -> list[AuditRow]:
    """The newest audit rows: logins, token events, control actions."""
    df = audit_rows(svc.engine, limit)
    return [AuditRow(id=int(r["id"]), ts=from_ms(int(r["ts_ms"])), username=r["username"], action=r["action"],
                     outcome=r["outcome"], client=r["client"], detail_json=r["detail_json"])
            for r in df.to_dict("records")]


@router.get("/users", response_model=list[UserRow], responses=_ERRORS)
def list_users(_: Principal = Depends(admin), svc: Services = Depends(services)) -> list[UserRow]:
    """Users, roles and lock state."""
    now_ms = int(svc.auth.clock() * 1000)
    return [UserRow(username=str(u["username"]), role=str(u["role"]), failed_logins=int(str(u["failed_logins"])),
                    locked=int(str(u["locked_until_ms"])) > now_ms, disabled=bool(u["disabled"]))
            for u in svc.auth.list_users()]
