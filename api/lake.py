"""Pipeline freshness: each lake table's current version and when it was last committed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cryptolake.duck import lake_tables
from cryptolake.settings import Settings
from cryptolake.types import from_ms


def freshness(settings: Settings, now: datetime) -> list[dict[str, Any]]:
    """``[{table, version, last_commit, age_s}]`` for every Delta table of the lake, oldest commit first."""
    from deltalake import DeltaTable

    rows: list[dict[str, Any]] = []
    for name, path in lake_tables(settings).items():
        table = DeltaTable(path)
        last = table.history(1)[0]
        committed = from_ms(int(last["timestamp"]))
        rows.append({"table": name, "version": int(table.version()), "last_commit": committed,
                     "age_s": round((now - committed).total_seconds(), 3), "operation": str(last.get("operation"))})
    return sorted(rows, key=lambda r: r["last_commit"])
