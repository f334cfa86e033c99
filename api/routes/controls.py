"""Trading sessions' accounts and their controls: pause, resume, flatten, kill, strategy parameters.

Controls are written to the account's journal (:class:`trader.orders.OrderJournal`), which the trading
session reads on every loop (:func:`trader.notify.apply_controls`, ``kill``/``reset`` in
:mod:`trader.session`). Reading needs a viewer; every control needs a trader, and every attempt, refused
or not, is in the audit log.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from api.audit import audit
from api.auth import Principal, Role
from api.deps import Services, principal, require, services
from api.routes import errors
from api.schemas import AccountState, ControlAck, ControlRequest, FillRow, ParamsAck, ParamsRequest
from api.security import client_key
from cryptolake.errors import ConfigError
from trader.orders import OrderJournal
from trader.strategies.registry import resolve_strategy

router = APIRouter(prefix="/accounts", tags=["controls"])
ACCOUNT = Path(min_length=1, max_length=128, description="A trading session's account id")
STRATEGY = Path(min_length=1, max_length=16, description="A strategy's name in that session")
_ERRORS = errors(401, 403, 404)
viewer = require(Role.VIEWER)
#: What each control writes to the journal (``reset`` is the session's existing resume key).
KEYS = {"pause": "pause", "resume": "reset", "flatten": "flatten", "kill": "kill"}
FIXED_FIELDS = ("kind", "name", "symbols")


def controller(request: Request, who: Principal = Depends(principal), svc: Services = Depends(services)) -> Principal:
    """A trader or an admin; a refused control attempt is audited before the 403."""
    if not who.role.allows(Role.TRADER):
        audit(svc.engine, "control", "denied", username=who.username, client=client_key(request),
              detail={"path": request.url.path, "role": who.role.value})
        raise HTTPException(403, f"role {who.role.value!r} may not do this (needs 'trader')")
    return who


def _account(svc: Services, account: str) -> dict[str, Any]:
    found = svc.data.account(account)
    if found is None:
        raise HTTPException(404, f"account={account!r}: no trading session journals it")
    return found


@router.get("", response_model=list[AccountState], responses=_ERRORS)
def list_accounts(_: Principal = Depends(viewer), svc: Services = Depends(services)) -> list[AccountState]:
    """Every trading session's account: risk state, halt reason, strategies, parameters."""
    return [AccountState(**a) for a in svc.data.accounts()]


@router.get("/{account}", response_model=AccountState, responses=_ERRORS)
def get_account(account: str = ACCOUNT, _: Principal = Depends(viewer),
                svc: Services = Depends(services)) -> AccountState:
    """One account's state."""
    return AccountState(**_account(svc, account))


@router.get("/{account}/fills", response_model=list[FillRow], responses=_ERRORS)
def account_fills(account: str = ACCOUNT, _: Principal = Depends(viewer),
                  svc: Services = Depends(services)) -> list[FillRow]:
    """The venue fills the account's session adopted, oldest first."""
    _account(svc, account)
    return [FillRow(**{k: r.get(k) for k in FillRow.model_fields}) for r in svc.data.account_fills(account)]


@router.post("/{account}/controls/{action}", response_model=ControlAck, status_code=202, responses=_ERRORS)
def control(body: ControlRequest, request: Request, action: Literal["pause", "resume", "flatten", "kill"],
            account: str = ACCOUNT, who: Principal = Depends(controller),
            svc: Services = Depends(services)) -> ControlAck:
    """Ask the account's session to pause (no new orders), resume, flatten (close everything) or kill
    (halt and cancel); it acts on its next loop (``poll_interval_s``)."""
    _account(svc, account)
    reason = f"{body.reason} (by {who.username})"
    OrderJournal(svc.data.store, account).put(**{KEYS[action]: reason})
    audit(svc.engine, f"control.{action}", "ok", username=who.username, client=client_key(request),
          detail={"account": account, "reason": body.reason})
    return ControlAck(account=account, action=action, reason=reason, requested_by=who.username)


@router.put("/{account}/strategies/{strategy}/params", response_model=ParamsAck, status_code=202,
            responses=_ERRORS)
def set_params(body: ParamsRequest, request: Request, account: str = ACCOUNT, strategy: str = STRATEGY,
               who: Principal = Depends(controller), svc: Services = Depends(services)) -> ParamsAck | JSONResponse:
    """Change strategy parameters, validated against the strategy's own config class; audited."""
    state = _account(svc, account)
    spec = next((s for s in state["strategies"] if s["name"] == strategy), None)
    if spec is None:
        raise HTTPException(404, f"strategy={strategy!r}: not traded by account {account!r} "
                                 f"({[s['name'] for s in state['strategies']]})")
    client = client_key(request)
    fixed = [f for f in FIXED_FIELDS if f in body.values]
    changes = {**state["params"].get(strategy, {}), **body.values}
    problems = [{"field": f"values.{f}", "problem": "cannot be changed on a running session"} for f in fixed]
    config: dict[str, Any] = {}
    if not problems:
        try:
            cls = resolve_strategy(str(spec["config"]["kind"]))
            config = cls.Config.model_validate({**spec["config"], **changes}).model_dump(mode="json")
        except ValidationError as exc:
            problems = [{"field": "values." + ".".join(str(p) for p in e["loc"]), "problem": e["msg"]}
                        for e in exc.errors()]
        except ConfigError as exc:
            raise HTTPException(409, f"strategy={strategy!r}: its class cannot be loaded here: {exc}") from exc
    if problems:
        audit(svc.engine, "control.params", "invalid", username=who.username, client=client,
              detail={"account": account, "strategy": strategy, "fields": sorted(body.values)})
        return JSONResponse({"detail": "invalid request", "errors": problems}, status_code=422)
    OrderJournal(svc.data.store, account).put(params={**state["params"], strategy: changes})
    audit(svc.engine, "control.params", "ok", username=who.username, client=client,
          detail={"account": account, "strategy": strategy, "values": body.values})
    return ParamsAck(account=account, strategy=strategy, config=config, requested_by=who.username)
