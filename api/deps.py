"""Request dependencies: the services of the running app, the caller, and role checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request
from sqlalchemy import Engine

from api.auth import AuthError, AuthService, Principal, Role
from api.backtests import BacktestJobs
from api.data import TradingData
from cryptolake.settings import Settings


@dataclass(frozen=True)
class Services:
    """What the routes use; built once by :func:`api.app.create_app`."""

    settings: Settings
    engine: Engine
    auth: AuthService
    data: TradingData
    backtests: BacktestJobs


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def principal(request: Request, svc: Services = Depends(services)) -> Principal:
    """The verified caller of a ``Authorization: Bearer <access token>`` request; 401 otherwise."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    try:
        return svc.auth.verify_access(token.strip())
    except AuthError as exc:
        raise HTTPException(401, exc.reason, headers={"WWW-Authenticate": "Bearer"}) from exc


def require(role: Role) -> Callable[[Principal], Principal]:
    """A dependency admitting ``role`` and above; 403 for a lesser role."""

    def check(who: Principal = Depends(principal)) -> Principal:
        if not who.role.allows(role):
            raise HTTPException(403, f"role {who.role.value!r} may not do this (needs {role.value!r})")
        return who

    return check
