"""The audit log: every login, token event and control action, who, when, from where and the outcome."""

from __future__ import annotations

import json
import time
from typing import Any

import pandas as pd
from sqlalchemy import Engine, insert, select

from api.db import audit_log
from cryptolake.logs import get_logger, redact

log = get_logger(__name__)


def audit(engine: Engine, action: str, outcome: str, *, username: str | None, client: str | None,
          detail: dict[str, Any] | None = None, now_ms: int | None = None) -> None:
    """Append one audit row (secrets in ``detail`` are redacted before they are stored)."""
    row = {
        "ts_ms": now_ms if now_ms is not None else int(time.time() * 1000),
        "username": username,
        "action": action,
        "outcome": outcome,
        "client": client,
        "detail_json": json.dumps(redact(detail or {}), default=str, sort_keys=True),
    }
    with engine.begin() as conn:
        conn.execute(insert(audit_log).values(**row))
    log.info("audit", extra={"action": action, "outcome": outcome, "user": username, "client": client})


def audit_rows(engine: Engine, limit: int = 200) -> pd.DataFrame:
    """The newest ``limit`` audit rows, newest first."""
    with engine.connect() as conn:
        rows = conn.execute(select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)).mappings().all()
    return pd.DataFrame([dict(r) for r in rows], columns=[c.name for c in audit_log.columns])
