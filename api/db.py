"""Users, refresh tokens and the audit log, in any SQLAlchemy database (SQLite file by default).

Times are epoch milliseconds. A refresh token is stored as its SHA-256 only; a login starts a token
*family*, every refresh rotates within it, and presenting a token already used revokes the whole family.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
)

from cryptolake.settings import Settings

metadata = MetaData()

users = Table(
    "api_users",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("password_hash", String(256), nullable=False),
    Column("role", String(16), nullable=False),
    Column("failed_logins", Integer, nullable=False, default=0),
    Column("locked_until_ms", BigInteger, nullable=False, default=0),
    Column("created_ms", BigInteger, nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
)
refresh_tokens = Table(
    "api_refresh_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("family_id", String(64), nullable=False, index=True),
    Column("username", String(64), nullable=False, index=True),
    Column("issued_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("used_ms", BigInteger),
    Column("revoked", Boolean, nullable=False, default=False),
)
audit_log = Table(
    "api_audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts_ms", BigInteger, nullable=False, index=True),
    Column("username", String(64)),
    Column("action", String(64), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("client", String(64)),
    Column("detail_json", Text, nullable=False),
)


def db_url(settings: Settings) -> str:
    """``api.db_url``, defaulting to ``sqlite:///<state_dir>/api/api.db``."""
    if settings.api.db_url:
        return settings.api.db_url
    path = settings.paths.state_dir / "api" / "api.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def make_engine(url: str) -> Engine:
    """An engine with the tables created; SQLite gets WAL and a busy timeout (API and CLI share it)."""
    engine = create_engine(url, future=True, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn, _record):  # type: ignore[no-untyped-def]
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.close()

    metadata.create_all(engine)
    return engine
