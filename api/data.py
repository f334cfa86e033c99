"""What the dashboard shows of trading, read from the trading store (the trader writes it)."""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd
from sqlalchemy import func, select

from cryptolake.types import from_ms, to_ms
from trader.orders import fill_from_json, live_state, venue_fills
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

    # --- trading sessions (paper/live accounts): their journal (trader.orders) -----------------
    def accounts(self) -> list[dict[str, Any]]:
        """Every account a trading session journals, with its risk state, strategies and parameters."""
        with self.store.engine.connect() as conn:
            if not self.store.engine.dialect.has_table(conn, live_state.name):
                return []
            rows = conn.execute(select(live_state.c.account_id, live_state.c.key, live_state.c.value_json)
                                .where(live_state.c.key.in_(ACCOUNT_KEYS))).all()
            counts: dict[str, int] = dict(conn.execute(select(venue_fills.c.account_id, func.count())
                                       .group_by(venue_fills.c.account_id)).all())
        by: dict[str, dict[str, Any]] = {}
        for account, key, text in rows:
            by.setdefault(account, {})[key] = json.loads(text)
        return [_account(a, v, int(counts.get(a, 0))) for a, v in sorted(by.items())]

    def account(self, account: str) -> dict[str, Any] | None:
        return next((a for a in self.accounts() if a["account"] == account), None)

    def account_fills(self, account: str, after_ms: int = -1, limit: int = 2000) -> list[dict[str, Any]]:
        """The fills the account's session adopted from the venue, after ``after_ms``, oldest first."""
        with self.store.engine.connect() as conn:
            if not self.store.engine.dialect.has_table(conn, venue_fills.name):
                return []
            texts = conn.execute(select(venue_fills.c.fill_json).where(
                venue_fills.c.account_id == account, venue_fills.c.ts_ms > after_ms)
                .order_by(venue_fills.c.ts_ms, venue_fills.c.id).limit(limit)).scalars().all()
        out = []
        for text in texts:
            f = fill_from_json(text)
            out.append({"id": f.id, "order_id": f.order_id, "client_id": f.client_id, "exchange": f.exchange,
                        "symbol": f.symbol, "side": str(f.side), "price": f.price, "qty": f.qty, "fee": f.fee,
                        "fee_currency": f.fee_currency, "ts": f.ts, "ts_ms": to_ms(f.ts),
                        "liquidity": str(f.liquidity), "tag": f.tag})
        return out


ACCOUNT_KEYS = ("risk", "halt_reason", "strategies", "params", "last_bar_ms", "kill", "pause", "flatten")


def _account(account: str, values: dict[str, Any], fills: int) -> dict[str, Any]:
    risk = values.get("risk") or {}
    last = values.get("last_bar_ms")
    return {"account": account, "state": str(risk.get("state", "unknown")), "halt_reason": values.get("halt_reason")
            or "", "fills": fills, "last_bar": None if last is None else from_ms(int(last)),
            "strategies": [{"name": str(s["name"]), "config": s["config"]} for s in values.get("strategies") or []],
            "params": values.get("params") or {},
            "pending": [k for k in ("kill", "pause", "flatten") if values.get(k)]}
