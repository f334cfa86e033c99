"""An account carried from one run to the next: cash, positions, open orders, and the node's counters.

A scheduled pipeline trades one data interval per run. The account must carry over: what the
node held at the end of interval N (cash, positions with their entry prices and open round trips,
orders resting at the venue, the risk engine's state, the strategies' id sequences, the venue's
order numbering) is what interval N+1 starts from. :func:`take_snapshot` captures it as a JSON-able
:class:`AccountSnapshot`; :func:`restore` loads it into a freshly built node, which then reconciles
with its venue as at any start. Market history (bars for indicators, stale runs, last prices) is not
part of it: the next run's feed replays the warm-up bars before its start.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import date, datetime
from enum import Enum
from typing import Any

from cryptolake.errors import ConfigError, DataValidationError
from trader.domain import Order, OrderStatus, OrderType, Position, Side
from trader.execution.paper import PaperExecutionClient
from trader.node import TradingNode
from trader.portfolio import OpenTrade

SNAPSHOT_VERSION = 1


@dataclass(frozen=True)
class AccountSnapshot:
    """Everything an account carries into its next run, as of ``as_of`` (the end of the last run)."""

    as_of: datetime
    cash: float
    equity: float
    fees_paid: float
    turnover: float
    trades_closed: int
    positions: list[dict[str, Any]]
    open_trades: dict[str, dict[str, Any]]
    last_prices: dict[str, float]
    open_orders: list[dict[str, Any]]
    order_owners: dict[str, str]
    strategy_seqs: dict[str, int]
    venue: dict[str, Any]
    risk: dict[str, Any]
    version: int = SNAPSHOT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(_plain(asdict(self)), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AccountSnapshot:
        raw = json.loads(text)
        if raw.get("version") != SNAPSHOT_VERSION:
            raise DataValidationError("version", raw.get("version"), f"unsupported, expected {SNAPSHOT_VERSION}")
        raw["as_of"] = datetime.fromisoformat(raw["as_of"])
        return cls(**raw)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _order(raw: dict[str, Any]) -> Order:
    return Order(**{**raw, "side": Side(raw["side"]), "type": OrderType(raw["type"]),
                    "status": OrderStatus(raw["status"]), "created_at": datetime.fromisoformat(raw["created_at"]),
                    "updated_at": _dt(raw["updated_at"])})


def take_snapshot(node: TradingNode, as_of: datetime) -> AccountSnapshot:
    """The account of ``node`` at ``as_of`` (call after its run: every order refreshed from the venue)."""
    venue = node.client
    if not isinstance(venue, PaperExecutionClient):
        raise ConfigError(f"snapshots of a {type(venue).__name__} account come from the venue's own reconciliation")
    p = node.portfolio
    open_orders = [o for o in node.all_orders() if o.is_open]
    return AccountSnapshot(
        as_of=as_of,
        cash=p.cash,
        equity=p.equity(),
        fees_paid=p.fees_paid,
        turnover=p.turnover,
        trades_closed=p.trades_closed,
        positions=[_plain(asdict(pos)) for pos in p.positions.values()],
        open_trades={k: _plain(asdict(t)) for k, t in p.open_trades.items()},
        last_prices=dict(p.last_prices),
        open_orders=[_plain(asdict(o)) for o in open_orders],
        order_owners={o.client_id: node.owner_of(o.client_id) for o in open_orders},
        strategy_seqs={s.name: s.seq for s in node.strategies},
        venue=venue.counters(),
        risk=_plain(node.risk.state_dict()),
    )


def restore(node: TradingNode, snap: AccountSnapshot) -> None:
    """Load ``snap`` into a freshly built ``node`` (before it starts); refuses a snapshot that does not fit."""
    if node.events_processed:
        raise ConfigError("restore a snapshot into a fresh node, before it processes any event")
    if node.start_time is None or node.start_time < snap.as_of:
        raise DataValidationError("start_time", node.start_time, f"must be at or after the snapshot's {snap.as_of}")
    positions = [Position(**{**raw, "opened_at": _dt(raw["opened_at"])}) for raw in snap.positions]
    unknown = sorted({pos.instrument_key for pos in positions} - set(node.instruments))
    missing = sorted(set(snap.strategy_seqs) - set(node.names))
    if unknown or missing:
        raise ConfigError(f"snapshot does not fit this node: instruments {unknown}, strategies {missing} unknown")
    p = node.portfolio
    p.cash, p.fees_paid, p.turnover, p.trades_closed = snap.cash, snap.fees_paid, snap.turnover, snap.trades_closed
    p.positions.update({pos.instrument_key: pos for pos in positions})
    p.last_prices.update(snap.last_prices)
    names = {f.name for f in fields(OpenTrade)}
    p.open_trades.update({
        k: OpenTrade(**{**{n: raw[n] for n in names}, "entry_time": datetime.fromisoformat(raw["entry_time"])})
        for k, raw in snap.open_trades.items()
    })
    orders = [_order(raw) for raw in snap.open_orders]
    venue = node.client
    if not isinstance(venue, PaperExecutionClient):
        raise ConfigError(f"a {type(venue).__name__} venue holds its own orders: reconcile instead of restoring")
    venue.restore(orders, {pos.instrument_key: pos.qty for pos in positions if pos.qty}, snap.venue)
    by_name = {s.name: s for s in node.strategies}
    for name, seq in snap.strategy_seqs.items():
        by_name[name].seq = seq
    for o in orders:
        node.adopt(replace(o), by_name[snap.order_owners[o.client_id]])
    node.risk.load_state(snap.risk)
    node.initial_equity = snap.equity
