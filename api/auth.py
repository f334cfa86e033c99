"""Passwords (argon2), access tokens (JWT) and rotating refresh tokens with reuse detection, lockout.

A login starts a token family. ``refresh`` marks the presented token used and issues the next one of the
family; presenting a used token again means it was stolen or replayed, so the whole family is revoked and
every access token of that login stops working (access tokens carry the family, checked per request).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, insert, select, update

from api.db import refresh_tokens, users
from cryptolake.errors import ConfigError, CryptolakeError, DataValidationError
from cryptolake.settings import ApiSettings

USERNAME = re.compile(r"^[a-z0-9_.-]{3,64}$")
MIN_PASSWORD = 12


class Role(StrEnum):
    """Least privilege: a viewer reads, a trader also controls trading, an admin also manages users."""

    VIEWER = "viewer"
    TRADER = "trader"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        order = [Role.VIEWER, Role.TRADER, Role.ADMIN]
        return order.index(self) >= order.index(needed)


class AuthError(CryptolakeError):
    """A login or token was refused; ``reason`` is safe to show (it never says which part was wrong)."""

    def __init__(self, reason: str, *, status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class Principal:
    """Who is calling, from a verified access token."""

    username: str
    role: Role
    family_id: str


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    role: Role


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AuthService:
    """Users and tokens over the API database; ``clock`` returns epoch seconds (tests move it)."""

    def __init__(self, engine: Engine, settings: ApiSettings, secret: str,
                 clock: Callable[[], float] = time.time) -> None:
        if len(secret) < 32:
            raise ConfigError("jwt secret: at least 32 characters are needed")
        self.engine = engine
        self.settings = settings
        self._secret = secret
        self.clock = clock
        # A stored hash keeps its own parameters, so raising the cost later still verifies old hashes.
        self._hasher = PasswordHasher(time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib,
                                      parallelism=1)
        self._dummy_hash = self._hasher.hash("not-a-password-of-anyone")

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    # --- users -------------------------------------------------------------------------
    def add_user(self, username: str, password: str, role: str) -> None:
        """Create a user; the error names the field (never the password's value)."""
        if not USERNAME.match(username):
            raise DataValidationError("username", username, "3-64 characters of a-z, 0-9, '_', '.', '-'")
        if role not in {r.value for r in Role}:
            raise DataValidationError("role", role, f"one of {', '.join(r.value for r in Role)}")
        if len(password) < MIN_PASSWORD:
            raise DataValidationError("password", "***", f"at least {MIN_PASSWORD} characters (got {len(password)})")
        if password.lower() == username.lower():
            raise DataValidationError("password", "***", "must not equal the username")
        with self.engine.begin() as conn:
            if conn.execute(select(users.c.username).where(users.c.username == username)).first():
                raise DataValidationError("username", username, "already exists")
            conn.execute(insert(users).values(
                username=username, password_hash=self._hasher.hash(password), role=role, failed_logins=0,
                locked_until_ms=0, created_ms=self._now_ms(), disabled=False))

    def list_users(self) -> list[dict[str, object]]:
        """Usernames, roles and lock state (never the hashes)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(users.c.username, users.c.role, users.c.failed_logins,
                                       users.c.locked_until_ms, users.c.disabled)).mappings().all()
        return [dict(r) for r in rows]

    # --- login -------------------------------------------------------------------------
    def login(self, username: str, password: str) -> TokenPair:
        """Tokens for a valid password; failures count towards the lockout, which a valid password cannot skip."""
        now = self._now_ms()
        with self.engine.begin() as conn:
            row = conn.execute(select(users).where(users.c.username == username)).mappings().first()
            if row is None or row["disabled"]:
                self._burn(password)
                raise AuthError("invalid username or password")
            if row["locked_until_ms"] > now:
                raise AuthError("account locked after repeated failed logins; try again later", status=423)
            ok: bool
            try:
                ok = self._hasher.verify(row["password_hash"], password)
            except (VerificationError, InvalidHashError):
                ok = False
            locked = 0
            if ok:
                conn.execute(update(users).where(users.c.username == username).values(failed_logins=0,
                                                                                       locked_until_ms=0))
            else:  # counted and committed before the refusal is raised
                failed = row["failed_logins"] + 1
                locked = now + self.settings.lockout_s * 1000 if failed >= self.settings.max_failed_logins else 0
                conn.execute(update(users).where(users.c.username == username).values(
                    failed_logins=0 if locked else failed, locked_until_ms=locked))
        if locked:
            raise AuthError("account locked after repeated failed logins; try again later", status=423)
        if not ok:
            raise AuthError("invalid username or password")
        return self._issue(username, Role(row["role"]), family_id=secrets.token_hex(16))

    def _burn(self, password: str) -> None:
        """Spend the time a real verification takes, so an unknown username is not faster to reject."""
        with contextlib.suppress(VerificationError, InvalidHashError):
            self._hasher.verify(self._dummy_hash, password or "x")

    def _issue(self, username: str, role: Role, family_id: str) -> TokenPair:
        now = self.clock()
        access = jwt.encode(
            {"sub": username, "role": role.value, "fam": family_id, "typ": "access",
             "iat": int(now), "exp": int(now) + self.settings.access_ttl_s, "jti": secrets.token_hex(8)},
            self._secret, algorithm="HS256")
        refresh = secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(insert(refresh_tokens).values(
                token_hash=_token_hash(refresh), family_id=family_id, username=username,
                issued_ms=int(now * 1000), expires_ms=int((now + self.settings.refresh_ttl_s) * 1000),
                used_ms=None, revoked=False))
        return TokenPair(access, refresh, self.settings.access_ttl_s, role)

    # --- refresh and logout ------------------------------------------------------------
    def refresh(self, token: str) -> tuple[TokenPair | None, str | None]:
        """``(new pair, None)``, or ``(None, reason)``; a reused token revokes its family (reason says so)."""
        now = self._now_ms()
        with self.engine.begin() as conn:
            row = conn.execute(select(refresh_tokens).where(
                refresh_tokens.c.token_hash == _token_hash(token))).mappings().first()
            if row is None:
                return None, "unknown refresh token"
            if row["revoked"]:
                return None, "refresh token revoked"
            if row["used_ms"] is not None:
                conn.execute(update(refresh_tokens).where(refresh_tokens.c.family_id == row["family_id"])
                             .values(revoked=True))
                return None, "refresh token reused: every token of this login is revoked"
            if row["expires_ms"] <= now:
                return None, "refresh token expired"
            conn.execute(update(refresh_tokens).where(refresh_tokens.c.token_hash == row["token_hash"])
                         .values(used_ms=now))
            user = conn.execute(select(users).where(users.c.username == row["username"])).mappings().first()
        if user is None or user["disabled"]:
            return None, "user no longer exists"
        return self._issue(row["username"], Role(user["role"]), row["family_id"]), None

    def family_of(self, token: str) -> tuple[str, str] | None:
        """``(family, username)`` of a refresh token, for auditing a logout."""
        with self.engine.connect() as conn:
            row = conn.execute(select(refresh_tokens.c.family_id, refresh_tokens.c.username).where(
                refresh_tokens.c.token_hash == _token_hash(token))).first()
        return (row[0], row[1]) if row else None

    def revoke_family(self, family_id: str) -> None:
        """Log the whole login out: its refresh tokens and (checked per request) its access tokens."""
        with self.engine.begin() as conn:
            conn.execute(update(refresh_tokens).where(refresh_tokens.c.family_id == family_id).values(revoked=True))

    # --- access ------------------------------------------------------------------------
    def verify_access(self, token: str) -> Principal:
        """The caller of a valid, unexpired access token whose login is not revoked."""
        try:
            # Expiry is checked against the service's clock below (one clock for every time rule).
            claims = jwt.decode(token, self._secret, algorithms=["HS256"],
                                options={"require": ["sub", "exp", "fam", "role", "typ"], "verify_exp": False,
                                         "verify_iat": False})
        except jwt.PyJWTError as exc:
            raise AuthError("invalid access token") from exc
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= self.clock():
            raise AuthError("access token expired")
        if claims.get("typ") != "access" or claims.get("role") not in {r.value for r in Role}:
            raise AuthError("invalid access token")
        with self.engine.connect() as conn:
            live = conn.execute(select(refresh_tokens.c.token_hash).where(
                refresh_tokens.c.family_id == claims["fam"], refresh_tokens.c.revoked.is_(False))).first()
        if live is None:
            raise AuthError("login revoked")
        return Principal(claims["sub"], Role(claims["role"]), claims["fam"])
