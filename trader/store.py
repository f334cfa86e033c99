"""The trading store: runs, orders, fills, positions, equity and trades in a SQL database.

Any SQLAlchemy 2 URL works (SQLite file by default, see :class:`trader.config.TraderSettings`).
Every row is keyed by ``run_id`` plus its own id, and writes are upserts (delete the keys,
insert, in one transaction), so re-writing the same changes is a no-op and
:meth:`TradeStore.begin_run` on an existing ``run_id`` replaces that run. Times are stored as
epoch milliseconds (exact and portable); readers return UTC-aware timestamps.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    insert,
    select,
)
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from cryptolake.errors import InfrastructureError, NetworkError
from cryptolake.logs import get_logger
from cryptolake.retry import call_with_retry
from cryptolake.types import from_ms, to_ms
from trader.domain import Fill, Order, Position
from trader.node import EquityPoint, NodeChanges
from trader.portfolio import Trade
from trader.snapshot import AccountSnapshot

if TYPE_CHECKING:
    import pandas as pd

log = get_logger(__name__)
metadata = MetaData()

runs = Table(
    "trader_runs",
    metadata,
    Column("run_id", String(128), primary_key=True),
    Column("mode", String(16), nullable=False),
    Column("config_json", Text, nullable=False),
    Column("last_event_ms", BigInteger),
    Column("status", String(16), nullable=False),
)
orders = Table(
    "trader_orders",
    metadata,
    Column("run_id", String(128), primary_key=True),
    Column("client_id", String(64), primary_key=True),
    Column("id", String(64)),
    Column("exchange", String(64)),
    Column("symbol", String(64)),
    Column("side", String(8)),
    Column("type", String(8)),
    Column("qty", Float),
    Column("price", Float),
    Column("status", String(16)),
    Column("reduce_only", Boolean),
    Column("oco_group", String(64)),
    Column("tag", String(32)),
    Column("filled_qty", Float),
    Column("avg_fill_price", Float),
    Column("created_at_ms", BigInteger),
    Column("updated_at_ms", BigInteger),
    Column("reason", Text),
)
fills = Table(
    "trader_fills",
    metadata,
    Column("run_id", String(128), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("order_id", String(64)),
    Column("client_id", String(64)),
    Column("exchange", String(64)),
    Column("symbol", String(64)),
    Column("side", String(8)),
    Column("price", Float),
    Column("qty", Float),
    Column("fee", Float),
    Column("fee_currency", String(16)),
    Column("ts_ms", BigInteger),
    Column("liquidity", String(8)),
    Column("tag", String(32)),
)
positions = Table(
    "trader_positions",
    metadata,
    Column("run_id", String(128), primary_key=True),
    Column("instrument", String(128), primary_key=True),
    Column("exchange", String(64)),
    Column("symbol", String(64)),
    Column("qty", Float),
    Column("avg_price", Float),
    Column("realized_pnl", Float),
    Column("opened_at_ms", BigInteger),
)
equity = Table(
    "trader_equity",
    metadata,
    Column("run_id", String(128), primary_key=True),
    Column("ts_ms", BigInteger, primary_key=True),
    Column("equity", Float),
    Column("cash", Float),
    Column("gross_exposure", Float),
    Column("open_positions", Integer),
    Column("risk_state", String(16)),
)
trades = Table(
    "trader_trades",
    metadata,
    Column("run_id", String(128), primary_key=True),
    Column("trade_no", Integer, primary_key=True),
    Column("exchange", String(64)),
    Column("symbol", String(64)),
    Column("direction", Integer),
    Column("entry_time_ms", BigInteger),
    Column("exit_time_ms", BigInteger),
    Column("entry_price", Float),
    Column("exit_price", Float),
    Column("qty", Float),
    Column("pnl", Float),
    Column("fees", Float),
)
accounts = Table(
    "trader_accounts",
    metadata,
    Column("account_id", String(128), primary_key=True),
    Column("as_of_ms", BigInteger, primary_key=True),
    Column("run_id", String(128), nullable=False),
    Column("snapshot_json", Text, nullable=False),
)
_CHILDREN: tuple[tuple[Table, str], ...] = (
    (orders, "client_id"),
    (fills, "id"),
    (positions, "instrument"),
    (equity, "ts_ms"),
    (trades, "trade_no"),
)


def _ms(ts: datetime | None) -> int | None:
    return None if ts is None else to_ms(ts)


def _order_row(o: Order) -> dict[str, Any]:
    return {
        "client_id": o.client_id,
        "id": o.id,
        "exchange": o.exchange,
        "symbol": o.symbol,
        "side": str(o.side),
        "type": str(o.type),
        "qty": o.qty,
        "price": o.price,
        "status": str(o.status),
        "reduce_only": o.reduce_only,
        "oco_group": o.oco_group,
        "tag": o.tag,
        "filled_qty": o.filled_qty,
        "avg_fill_price": o.avg_fill_price,
        "created_at_ms": _ms(o.created_at),
        "updated_at_ms": _ms(o.updated_at),
        "reason": o.reason,
    }


def _fill_row(f: Fill) -> dict[str, Any]:
    return {
        "id": f.id,
        "order_id": f.order_id,
        "client_id": f.client_id,
        "exchange": f.exchange,
        "symbol": f.symbol,
        "side": str(f.side),
        "price": f.price,
        "qty": f.qty,
        "fee": f.fee,
        "fee_currency": f.fee_currency,
        "ts_ms": _ms(f.ts),
        "liquidity": str(f.liquidity),
        "tag": f.tag,
    }


def _position_row(p: Position) -> dict[str, Any]:
    return {
        "instrument": p.instrument_key,
        "exchange": p.exchange,
        "symbol": p.symbol,
        "qty": p.qty,
        "avg_price": p.avg_price,
        "realized_pnl": p.realized_pnl,
        "opened_at_ms": _ms(p.opened_at),
    }


def _equity_row(e: EquityPoint) -> dict[str, Any]:
    return {
        "ts_ms": _ms(e.ts),
        "equity": e.equity,
        "cash": e.cash,
        "gross_exposure": e.gross_exposure,
        "open_positions": e.open_positions,
        "risk_state": e.risk_state,
    }


def _trade_row(t: Trade) -> dict[str, Any]:
    return {
        "trade_no": t.trade_no,
        "exchange": t.exchange,
        "symbol": t.symbol,
        "direction": t.direction,
        "entry_time_ms": _ms(t.entry_time),
        "exit_time_ms": _ms(t.exit_time),
        "entry_price": t.entry_price,
        "exit_price": t.exit_price,
        "qty": t.qty,
        "pnl": t.pnl,
        "fees": t.fees,
    }


class TradeStore:
    """Reads and writes one trading database."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.engine: Engine = create_engine(url, future=True)
            metadata.create_all(self.engine)
        except SQLAlchemyError as exc:
            raise InfrastructureError(f"trading store {self.engine_url_safe()}: {exc}") from exc

    def engine_url_safe(self) -> str:
        """The URL without its password, for messages and logs."""
        try:
            from sqlalchemy.engine import make_url

            return make_url(self.url).render_as_string(hide_password=True)
        except SQLAlchemyError:
            return "<unparseable url>"

    def tx(self, fn: Any, what: str) -> Any:
        """Run ``fn(connection)`` in one transaction, retrying a locked or dropped database."""
        return self._tx(fn, what)

    def _tx(self, fn: Any, what: str) -> Any:
        def attempt() -> Any:
            try:
                with self.engine.begin() as conn:
                    return fn(conn)
            except OperationalError as exc:  # locked database, dropped connection: worth retrying
                raise NetworkError(f"{what} on {self.engine_url_safe()}: {exc}") from exc
            except SQLAlchemyError as exc:
                raise InfrastructureError(f"{what} on {self.engine_url_safe()}: {exc}") from exc

        return call_with_retry(attempt, what=f"trader.store.{what}")

    # --- writes ---------------------------------------------------------------------------
    def begin_run(self, run_id: str, mode: str, config: dict[str, Any]) -> None:
        """Start (or restart, replacing everything stored for it) the run ``run_id``."""

        def work(conn: Connection) -> None:
            self._delete_rows(conn, run_id)
            conn.execute(
                insert(runs).values(
                    run_id=run_id,
                    mode=mode,
                    status="running",
                    config_json=json.dumps(config, sort_keys=True, default=str),
                )
            )

        self._tx(work, "begin_run")
        log.info("trader.store.begin_run", extra={"run_id": run_id, "mode": mode})

    def write_changes(
        self,
        run_id: str,
        changes: NodeChanges,
        current_positions: Iterable[Position],
        *,
        last_event_time: datetime | None = None,
        status: str = "running",
    ) -> None:
        """Upsert the changes of one checkpoint in a single transaction."""
        batches: dict[Table, list[dict[str, Any]]] = {
            orders: [_order_row(o) for o in changes.orders],
            fills: [_fill_row(f) for f in changes.fills],
            positions: [_position_row(p) for p in current_positions],
            equity: [_equity_row(e) for e in changes.equity],
            trades: [_trade_row(t) for t in changes.trades],
        }

        def work(conn: Connection) -> None:
            for table, key in _CHILDREN:
                self._upsert(conn, table, key, run_id, batches[table])
            conn.execute(
                runs.update().where(runs.c.run_id == run_id).values(status=status, last_event_ms=_ms(last_event_time))
            )

        self._tx(work, "write_changes")

    @staticmethod
    def _upsert(conn: Connection, table: Table, key: str, run_id: str, batch: Sequence[dict[str, Any]]) -> None:
        if not batch:
            return
        col = table.c[key]
        keys = [r[key] for r in batch]
        for i in range(0, len(keys), 500):
            conn.execute(delete(table).where(table.c.run_id == run_id, col.in_(keys[i : i + 500])))
        conn.execute(insert(table), [{"run_id": run_id, **r} for r in batch])

    def delete_run(self, run_id: str) -> None:
        """Remove everything stored for ``run_id``."""

        self._tx(lambda conn: self._delete_rows(conn, run_id), "delete_run")

    @staticmethod
    def _delete_rows(conn: Connection, run_id: str) -> None:
        for table, _ in _CHILDREN:
            conn.execute(delete(table).where(table.c.run_id == run_id))
        conn.execute(delete(runs).where(runs.c.run_id == run_id))

    def save_account(self, account_id: str, run_id: str, snapshot: AccountSnapshot) -> None:
        """Keep the account ``run_id`` ended with (replacing one saved for the same time)."""
        as_of = _ms(snapshot.as_of)

        def work(conn: Connection) -> None:
            key = (accounts.c.account_id == account_id) & (accounts.c.as_of_ms == as_of)
            conn.execute(delete(accounts).where(key))
            conn.execute(insert(accounts).values(account_id=account_id, as_of_ms=as_of, run_id=run_id,
                                                 snapshot_json=snapshot.to_json()))

        self._tx(work, "save_account")

    def account(self, account_id: str, as_of: datetime) -> AccountSnapshot | None:
        """The account as it was at exactly ``as_of`` (the end of the run before), or None."""

        def work(conn: Connection) -> str | None:
            key = (accounts.c.account_id == account_id) & (accounts.c.as_of_ms == _ms(as_of))
            return conn.execute(select(accounts.c.snapshot_json).where(key)).scalar()

        text = self._tx(work, "read account")
        return None if text is None else AccountSnapshot.from_json(text)

    def account_times(self, account_id: str) -> list[datetime]:
        """Every time the account was saved at, oldest first."""

        def work(conn: Connection) -> list[int]:
            stmt = select(accounts.c.as_of_ms).where(accounts.c.account_id == account_id).order_by(accounts.c.as_of_ms)
            return list(conn.execute(stmt).scalars())

        return [from_ms(ms) for ms in self._tx(work, "read account times")]

    # --- reads ----------------------------------------------------------------------------
    def _read(self, table: Table, run_id: str, order_by: str) -> pd.DataFrame:
        import pandas as pd  # only readers of results need it: a live trader starts without it

        def work(conn: Connection) -> pd.DataFrame:
            stmt = select(table).where(table.c.run_id == run_id).order_by(table.c[order_by])
            return pd.DataFrame(conn.execute(stmt).mappings().all(), columns=[c.name for c in table.columns])

        df: pd.DataFrame = self._tx(work, f"read {table.name}")
        for col in [c for c in df.columns if c.endswith("_ms")]:
            df[col.removesuffix("_ms")] = pd.to_datetime(df[col], unit="ms", utc=True)
            df = df.drop(columns=[col])
        return df.drop(columns=["run_id"])

    def run(self, run_id: str) -> dict[str, Any] | None:
        """The run's header row (mode, config, status, last event time) or None."""

        def work(conn: Connection) -> dict[str, Any] | None:
            row = conn.execute(select(runs).where(runs.c.run_id == run_id)).mappings().first()
            return dict(row) if row else None

        result: dict[str, Any] | None = self._tx(work, "read run")
        return result

    def orders(self, run_id: str) -> pd.DataFrame:
        return self._read(orders, run_id, "created_at_ms")

    def fills(self, run_id: str) -> pd.DataFrame:
        return self._read(fills, run_id, "ts_ms")

    def positions(self, run_id: str) -> pd.DataFrame:
        return self._read(positions, run_id, "instrument")

    def equity(self, run_id: str) -> pd.DataFrame:
        return self._read(equity, run_id, "ts_ms")

    def trades(self, run_id: str) -> pd.DataFrame:
        return self._read(trades, run_id, "trade_no")
