"""Login, refresh, logout and who-am-I. Every attempt is audited; secrets never reach a log or a body twice."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from api.audit import audit
from api.auth import AuthError, Principal, TokenPair
from api.deps import Services, principal, services
from api.routes import errors
from api.schemas import LoginRequest, Me, RefreshRequest, TokenResponse
from api.security import CSRF_COOKIE, REFRESH_COOKIE, client_key, csrf_ok

router = APIRouter(prefix="/auth", tags=["auth"])
COOKIE_PATH = "/api/v1/auth"
_ERRORS = errors(401, 403, 423)


def _token_response(pair: TokenPair, svc: Services) -> JSONResponse:
    body = TokenResponse(access_token=pair.access_token, refresh_token=pair.refresh_token,
                         expires_in=pair.expires_in, role=pair.role.value)
    response = JSONResponse(body.model_dump())
    secure = svc.settings.api.https
    response.set_cookie(REFRESH_COOKIE, pair.refresh_token, max_age=svc.settings.api.refresh_ttl_s,
                        httponly=True, secure=secure, samesite="strict", path=COOKIE_PATH)
    response.set_cookie(CSRF_COOKIE, secrets.token_urlsafe(24), max_age=svc.settings.api.refresh_ttl_s,
                        httponly=False, secure=secure, samesite="strict", path="/")
    return response


@router.post("/login", response_model=TokenResponse, responses=_ERRORS)
def login(body: LoginRequest, request: Request, svc: Services = Depends(services)) -> JSONResponse:
    """Exchange a username and password for an access token and a refresh token (also set as cookies)."""
    client = client_key(request)
    try:
        pair = svc.auth.login(body.username, body.password)
    except AuthError as exc:
        audit(svc.engine, "login", "locked" if exc.status == 423 else "denied", username=body.username,
              client=client)
        raise HTTPException(exc.status, exc.reason) from exc
    audit(svc.engine, "login", "ok", username=body.username, client=client)
    return _token_response(pair, svc)


def _presented_refresh(body: RefreshRequest | None, request: Request) -> str:
    if body is not None and body.refresh_token:
        return body.refresh_token
    cookie = request.cookies.get(REFRESH_COOKIE)
    if not cookie:
        raise HTTPException(401, "no refresh token")
    if not csrf_ok(request):
        raise HTTPException(403, "CSRF check failed: send the x-csrf-token header equal to the cl_csrf cookie")
    return cookie


@router.post("/refresh", response_model=TokenResponse, responses=_ERRORS)
def refresh(request: Request, body: RefreshRequest | None = None,
            svc: Services = Depends(services)) -> JSONResponse:
    """Rotate: the presented refresh token is spent and a new pair issued; a reused token revokes the login."""
    token = _presented_refresh(body, request)
    pair, reason = svc.auth.refresh(token)
    if pair is None:
        family = svc.auth.family_of(token)
        audit(svc.engine, "refresh", "reuse" if reason and "reused" in reason else "denied",
              username=family[1] if family else None, client=client_key(request), detail={"reason": reason})
        raise HTTPException(401, reason or "refresh refused")
    audit(svc.engine, "refresh", "ok", username=svc.auth.verify_access(pair.access_token).username,
          client=client_key(request))
    return _token_response(pair, svc)


@router.post("/logout", status_code=204, responses=_ERRORS)
def logout(request: Request, body: RefreshRequest | None = None, svc: Services = Depends(services)) -> Response:
    """Revoke the login the refresh token belongs to (all its tokens)."""
    token = _presented_refresh(body, request)
    family = svc.auth.family_of(token)
    if family is None:
        raise HTTPException(401, "unknown refresh token")
    svc.auth.revoke_family(family[0])
    audit(svc.engine, "logout", "ok", username=family[1], client=client_key(request))
    response = Response(status_code=204)
    response.delete_cookie(REFRESH_COOKIE, path=COOKIE_PATH)
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@router.get("/me", response_model=Me, responses=_ERRORS)
def me(who: Principal = Depends(principal)) -> Me:
    """The caller's username and role."""
    return Me(username=who.username, role=who.role.value)
