"""What the dashboard shows of trading, read from the trading store (the trader writes it)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from sqlalchemy import select

from trader.store import TradeStore, equity, fills, runs


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain dicts: timestamps stay datetimes, NaN/NaT become None (JSON has no NaN)."""
    out: list[dict[str, Any]] = []
    for row in df.to_dict(orient="records"):
        clean: dict[str, Any] = {}
        for name, value in row.items():
            key = str(name)
            if value is None or (isinstance(value, float) and not math.isfinite(value)) or value is pd.NaT:
                clean[key] = None
            elif isinstance(value, pd.Timestamp):
                clean[key] = value.to_pydatetime()
            else:
                clean[key] = value
        out.append(clean)
    return out


class TradingData:
    """Read-only views of the trading store for the API."""

    def __init__(self, store: TradeStore) -> None:
        self.store = store

    def runs(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest runs first (by their last event)."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(runs.c.run_id, runs.c.mode, runs.c.status, runs.c.last_event_ms)
                                .order_by(runs.c.last_event_ms.desc().nulls_last()).limit(limit)).mappings().all()
        return [{"run_id": r["run_id"], "mode": r["mode"], "status": r["status"],
                 "last_event": None if r["last_event_ms"] is None
                 else pd.Timestamp(r["last_event_ms"], unit="ms", tz="UTC").to_pydatetime()} for r in rows]

    def exists(self, run_id: str) -> bool:
        return self.store.run(run_id) is not None

    def orders(self, run_id: str) -> list[dict[str, Any]]:
        return _records(self.store.orders(run_id))

    def fills(self, run_id: str) -> list[dict[str, Any]]:
        return _records(self.store.fills(run_id))

    def positions(self, run_id: str) -> list[dict[str, Any]]:
        return _records(self.store.positions(run_id))

    def equity(self, run_id: str) -> list[dict[str, Any]]:
        return _records(self.store.equity(run_id))

    def fills_after(self, run_id: str, after_ms: int, limit: int = 500) -> list[dict[str, Any]]:
        """Fills of ``run_id`` stamped after ``after_ms`` (what the live feed has not pushed yet)."""
        return self._after(fills, run_id, after_ms, limit)

    def equity_after(self, run_id: str, after_ms: int, limit: int = 2000) -> list[dict[str, Any]]:
        """Equity points of ``run_id`` after ``after_ms``."""
        return self._after(equity, run_id, after_ms, limit)

    def _after(self, table: Any, run_id: str, after_ms: int, limit: int) -> list[dict[str, Any]]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(table).where(table.c.run_id == run_id, table.c.ts_ms > after_ms)
                                .order_by(table.c.ts_ms).limit(limit)).mappings().all()
        return [{k: v for k, v in dict(r).items() if k != "run_id"} for r in rows]
