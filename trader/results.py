"""Run results as DataFrames, shared by backtest and live (same fields, same builders)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

import pandas as pd

from trader.domain import Fill, Order, Rejection
from trader.metrics import SYMBOL_COLUMNS, symbol_breakdown
from trader.node import EquityPoint, TradingNode
from trader.portfolio import Trade

if TYPE_CHECKING:
    from trader.snapshot import AccountSnapshot

FILL_COLUMNS = [
    "id",
    "order_id",
    "client_id",
    "exchange",
    "symbol",
    "side",
    "price",
    "qty",
    "fee",
    "fee_currency",
    "ts",
    "liquidity",
    "tag",
]
ORDER_COLUMNS = [
    "client_id",
    "id",
    "exchange",
    "symbol",
    "side",
    "type",
    "qty",
    "price",
    "status",
    "reduce_only",
    "oco_group",
    "tag",
    "filled_qty",
    "avg_fill_price",
    "created_at",
    "updated_at",
    "reason",
]
EQUITY_COLUMNS = ["ts", "equity", "cash", "gross_exposure", "open_positions", "risk_state"]
TRADE_COLUMNS = [
    "trade_no",
    "exchange",
    "symbol",
    "direction",
    "entry_time",
    "exit_time",
    "entry_price",
    "exit_price",
    "qty",
    "pnl",
    "fees",
]
REJECTION_COLUMNS = ["ts", "client_id", "tag", "side", "type", "qty", "reason"]
SKIPPED_COLUMNS = ["open_time", "exchange", "symbol", "timeframe", "reasons"]


def _frame(columns: dict[str, list[Any]] | list[dict[str, Any]], names: list[str]) -> pd.DataFrame:
    df = pd.DataFrame(columns, columns=names)
    for col in df.columns:
        if col in ("ts", "created_at", "updated_at", "entry_time", "exit_time"):
            df[col] = pd.to_datetime(df[col], utc=True)
    return df


def _table(items: list[Any], names: list[str]) -> pd.DataFrame:
    """``items``' attributes ``names`` as a frame (enums as their values), built column by column: attribute
    access, not dataclasses.asdict (it deep-copies) nor a dict per row. No items: the empty frame of no rows."""
    if not items:
        return _frame([], names)
    out: dict[str, list[Any]] = {}
    for c in names:
        col = [getattr(item, c) for item in items]
        if any(issubclass(t, Enum) for t in set(map(type, col))):
            col = [v.value if isinstance(v, Enum) else v for v in col]
        out[c] = col
    return _frame(out, names)


def fills_frame(fills: list[Fill]) -> pd.DataFrame:
    return _table(fills, FILL_COLUMNS)


def orders_frame(orders: list[Order]) -> pd.DataFrame:
    return _table(orders, ORDER_COLUMNS)


def equity_frame(points: list[EquityPoint]) -> pd.DataFrame:
    return _table(points, EQUITY_COLUMNS)


def trades_frame(trades: list[Trade]) -> pd.DataFrame:
    return _table(trades, TRADE_COLUMNS)


def rejections_frame(rejections: list[Rejection]) -> pd.DataFrame:
    rows = [
        {
            "ts": r.ts,
            "client_id": r.intent.client_id,
            "tag": r.intent.tag,
            "side": str(r.intent.side),
            "type": str(r.intent.type),
            "qty": r.intent.qty,
            "reason": r.reason,
        }
        for r in rejections
    ]
    return _frame(rows, REJECTION_COLUMNS)


def skipped_frame(node: TradingNode) -> pd.DataFrame:
    """The bars the node skipped, with their reasons (comma-separated)."""
    rows = [{"open_time": b.open_time, "exchange": b.exchange, "symbol": b.symbol, "timeframe": b.timeframe,
             "reasons": ",".join(b.reasons)} for b in node.skipped]
    df = pd.DataFrame(rows, columns=SKIPPED_COLUMNS)
    df["open_time"] = pd.to_datetime(df["open_time"], utc=True)
    return df


@dataclass
class RunResult:
    """What a run produced: fills, orders, the account's equity curve, closed trades, risk
    rejections, account-level metrics, counters (``stats``: the feed's and the node's, incl. skipped
    bars by reason), the per-symbol breakdown and the skipped bars."""

    run_id: str
    fills: pd.DataFrame
    orders: pd.DataFrame
    equity: pd.DataFrame
    trades: pd.DataFrame
    rejections: pd.DataFrame
    metrics: dict[str, Any]
    stats: dict[str, Any] = field(default_factory=dict)
    by_symbol: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SYMBOL_COLUMNS))
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SKIPPED_COLUMNS))
    account: AccountSnapshot | None = None

    @classmethod
    def from_node(
        cls, run_id: str, node: TradingNode, metrics: dict[str, Any], stats: dict[str, Any] | None = None
    ) -> RunResult:
        fills = fills_frame(node.fills)
        trades = trades_frame(node.portfolio.trades)
        p = node.portfolio
        return cls(
            run_id,
            fills,
            orders_frame(node.all_orders()),
            equity_frame(node.equity),
            trades,
            rejections_frame(node.rejections),
            metrics,
            {**dict(stats or {}), **dict(node.counts)},
            symbol_breakdown(fills, trades, p.positions, p.last_prices),
            skipped_frame(node),
        )


class BacktestResult(RunResult):
    """Result of :func:`trader.backtest.run_backtest`."""


class LiveResult(RunResult):
    """Result of :func:`trader.live.run_live`; ``stats`` holds the Kafka feed's counters too."""
