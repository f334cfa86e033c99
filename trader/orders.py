"""The order state machine, persisted write-ahead.

Every order of a live account passes through explicit states (:class:`~trader.domain.OrderStatus`)
and only along the edges of :data:`TRANSITIONS`. :class:`OrderJournal` stores each transition
(an append-only event row plus the order's current row, in one transaction) *before* the action it
leads to: ``SUBMITTED`` is on disk before the order is sent, ``PENDING_CANCEL`` before the cancel.
A process killed at any instant therefore restarts knowing every client order id that may have
reached the venue, and resolves the ones in doubt by looking them up (:mod:`trader.reconcile`),
never by sending again.

The journal also keeps every venue fill adopted (so a fill is booked exactly once across restarts)
and a small key/value state per account (risk state, halt reason, strategy id sequences, the
venue balances the account started from). Any SQLAlchemy URL works (SQLite by default).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import fields, replace
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Connection, Float, Integer, String, Table, Text, delete, insert, select

from cryptolake.errors import FatalError
from cryptolake.types import to_ms
from trader.domain import Fill, Liquidity, Order, OrderStatus, OrderType, Side
from trader.store import TradeStore, metadata

S = OrderStatus

#: The legal edges. INITIALIZED -> REJECTED is a local refusal (precision, limits) before sending.
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.INITIALIZED: frozenset({S.SUBMITTED, S.REJECTED, S.ACCEPTED}),  # ACCEPTED: emulated (local) orders
    S.SUBMITTED: frozenset({S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED, S.REJECTED, S.EXPIRED, S.CANCELED,
                            S.UNKNOWN}),
    S.UNKNOWN: frozenset({S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED, S.REJECTED, S.EXPIRED, S.CANCELED}),
    S.ACCEPTED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED, S.SUBMITTED}),
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED}),
    S.PENDING_CANCEL: frozenset({S.CANCELED, S.FILLED, S.PARTIALLY_FILLED, S.ACCEPTED, S.EXPIRED}),
    S.FILLED: frozenset(),
    S.CANCELED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
}
TERMINAL = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)


class IllegalTransitionError(FatalError):
    """An order was asked to move along an edge the state machine does not have (a bug, never data)."""


order_events = Table(
    "trader_order_events", metadata,
    Column("account_id", String(128), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("client_id", String(64), nullable=False),
    Column("status", String(20), nullable=False),
    Column("ts_ms", BigInteger, nullable=False),
    Column("venue_id", String(64)),
    Column("filled_qty", Float),
    Column("reason", Text),
)
live_orders = Table(
    "trader_live_orders", metadata,
    Column("account_id", String(128), primary_key=True),
    Column("client_id", String(64), primary_key=True),
    Column("owner", String(32)),
    Column("order_json", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)
venue_fills = Table(
    "trader_venue_fills", metadata,
    Column("account_id", String(128), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("client_id", String(64), nullable=False),
    Column("fill_json", Text, nullable=False),
    Column("ts_ms", BigInteger, nullable=False),
)
live_state = Table(
    "trader_live_state", metadata,
    Column("account_id", String(128), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("value_json", Text, nullable=False),
)
JOURNAL_TABLES = (order_events, live_orders, venue_fills, live_state)


def order_to_json(o: Order) -> str:
    raw = {f.name: getattr(o, f.name) for f in fields(Order)}
    raw |= {"side": str(o.side), "type": str(o.type), "status": str(o.status),
            "created_at": o.created_at.isoformat(), "updated_at": o.updated_at.isoformat() if o.updated_at else None}
    return json.dumps(raw, sort_keys=True)


def order_from_json(text: str) -> Order:
    raw = json.loads(text)
    return Order(**{**raw, "side": Side(raw["side"]), "type": OrderType(raw["type"]),
                    "status": OrderStatus(raw["status"]), "created_at": datetime.fromisoformat(raw["created_at"]),
                    "updated_at": datetime.fromisoformat(raw["updated_at"]) if raw["updated_at"] else None})


def fill_to_json(f: Fill) -> str:
    raw = {k.name: getattr(f, k.name) for k in fields(Fill)}
    raw |= {"side": str(f.side), "liquidity": str(f.liquidity), "ts": f.ts.isoformat()}
    return json.dumps(raw, sort_keys=True)


def fill_from_json(text: str) -> Fill:
    raw = json.loads(text)
    return Fill(**{**raw, "side": Side(raw["side"]), "liquidity": Liquidity(raw["liquidity"]),
                   "ts": datetime.fromisoformat(raw["ts"])})


class OrderJournal:
    """Write-ahead storage of one account's orders, fills and live state."""

    def __init__(self, store: TradeStore, account_id: str) -> None:
        self.store = store
        self.account_id = account_id
        metadata.create_all(store.engine, tables=list(JOURNAL_TABLES))
        self._seq = int(self._tx(lambda c: c.execute(
            select(order_events.c.seq).where(order_events.c.account_id == account_id)
            .order_by(order_events.c.seq.desc()).limit(1)).scalar() or 0, "journal seq"))
        self.orders: dict[str, Order] = {}
        self.owners: dict[str, str] = {}
        for owner, text in self._tx(lambda c: c.execute(
                select(live_orders.c.owner, live_orders.c.order_json).where(live_orders.c.account_id == account_id)
                .order_by(live_orders.c.created_ms, live_orders.c.client_id)).all(), "journal orders"):
            o = order_from_json(text)
            self.orders[o.client_id] = o
            self.owners[o.client_id] = owner or ""
        self.fill_ids: set[str] = {f.id for f in self.fills()}

    def _tx(self, fn: Callable[[Connection], Any], what: str) -> Any:
        return self.store.tx(fn, f"journal.{what}")

    # --- orders ------------------------------------------------------------------------
    def record(self, order: Order, status: OrderStatus, ts: datetime, *, reason: str = "", owner: str | None = None,
               **changes: Any) -> Order:
        """Move ``order`` to ``status`` (with ``changes``: id, filled_qty...) and store it; returns the new order.

        A new client id starts at INITIALIZED; a transition off :data:`TRANSITIONS` raises
        :class:`IllegalTransitionError`. Re-recording the same status with no change writes nothing.
        """
        cid = order.client_id
        before = self.orders.get(cid)
        if before is None:
            if status not in (S.INITIALIZED, S.SUBMITTED, S.ACCEPTED, S.REJECTED, S.UNKNOWN):
                raise IllegalTransitionError(f"order {cid!r}: a new order cannot start in {status}")
        elif status is not before.status and status not in TRANSITIONS[before.status]:
            raise IllegalTransitionError(f"order {cid!r}: {before.status} -> {status} is not a legal transition")
        new = replace(before if before is not None else order, status=status, updated_at=ts,
                      reason=reason or (before.reason if before else order.reason), **changes)
        if before is not None and new == before:
            return replace(new)
        owner = owner if owner is not None else self.owners.get(cid, "")
        self._seq += 1
        seq = self._seq
        row = {"account_id": self.account_id, "client_id": cid, "owner": owner, "order_json": order_to_json(new),
               "status": str(status), "created_ms": to_ms(new.created_at)}
        event = {"account_id": self.account_id, "seq": seq, "client_id": cid, "status": str(status),
                 "ts_ms": to_ms(ts), "venue_id": new.id, "filled_qty": new.filled_qty, "reason": reason}

        def work(conn: Connection) -> None:
            conn.execute(delete(live_orders).where(live_orders.c.account_id == self.account_id,
                                                   live_orders.c.client_id == cid))
            conn.execute(insert(live_orders).values(**row))
            conn.execute(insert(order_events).values(**event))

        self._tx(work, "record")
        self.orders[cid] = new
        self.owners[cid] = owner
        return replace(new)

    def events(self, client_id: str | None = None) -> list[tuple[str, OrderStatus, str]]:
        """(client id, status, reason) of every stored transition, in order."""
        stmt = select(order_events.c.client_id, order_events.c.status, order_events.c.reason).where(
            order_events.c.account_id == self.account_id)
        if client_id is not None:
            stmt = stmt.where(order_events.c.client_id == client_id)
        rows = self._tx(lambda c: c.execute(stmt.order_by(order_events.c.seq)).all(), "events")
        return [(cid, OrderStatus(st), reason or "") for cid, st, reason in rows]

    def open_orders(self) -> list[Order]:
        return [replace(o) for o in self.orders.values() if o.is_open]

    # --- fills -------------------------------------------------------------------------
    def record_fill(self, fill: Fill) -> bool:
        """Keep ``fill`` unless already kept; True if it is new (book it), False if seen before."""
        if fill.id in self.fill_ids:
            return False
        row = {"account_id": self.account_id, "id": fill.id, "client_id": fill.client_id,
               "fill_json": fill_to_json(fill), "ts_ms": to_ms(fill.ts)}
        self._tx(lambda c: c.execute(insert(venue_fills).values(**row)), "record_fill")
        self.fill_ids.add(fill.id)
        return True

    def fills(self) -> list[Fill]:
        """Every fill adopted, in venue time order (ties by id)."""
        rows = self._tx(lambda c: c.execute(
            select(venue_fills.c.fill_json).where(venue_fills.c.account_id == self.account_id)
            .order_by(venue_fills.c.ts_ms, venue_fills.c.id)).scalars().all(), "fills")
        return [fill_from_json(t) for t in rows]

    # --- state -------------------------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        text = self._tx(lambda c: c.execute(select(live_state.c.value_json).where(
            live_state.c.account_id == self.account_id, live_state.c.key == key)).scalar(), "get")
        return default if text is None else json.loads(text)

    def put(self, **values: Any) -> None:
        """Store ``key=value`` pairs (JSON) in one transaction."""
        def work(conn: Connection) -> None:
            for key, value in values.items():
                conn.execute(delete(live_state).where(live_state.c.account_id == self.account_id,
                                                      live_state.c.key == key))
                conn.execute(insert(live_state).values(account_id=self.account_id, key=key,
                                                       value_json=json.dumps(value, sort_keys=True, default=str)))
        self._tx(work, "put")
