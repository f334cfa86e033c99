"""Export a finished run from the trading store to the Delta tables ``trading.orders``,
``trading.fills`` and ``trading.equity`` (specs in :mod:`cryptolake.tables`), for DuckDB.

Written with delta-rs (``deltalake.write_deltalake``), no Spark: a run is small and the
trader process has no JVM. Each table is overwritten *only where* ``run_id`` matches (a
predicate overwrite, Delta's replaceWhere), so re-exporting a run replaces its rows and leaves
every other run alone; the write is one Delta commit per table. Rows are validated (keys
present and unique, times UTC) before anything is written.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa

from cryptolake.errors import DataValidationError, InfrastructureError
from cryptolake.logs import get_logger
from cryptolake.settings import Settings, get_settings
from cryptolake.tables import TRADING_EQUITY, TRADING_FILLS, TRADING_ORDERS, TableSpec
from trader.config import TraderSettings
from trader.store import TradeStore

log = get_logger(__name__)

_ARROW: dict[str, pa.DataType] = {
    "STRING": pa.string(),
    "DOUBLE": pa.float64(),
    "BIGINT": pa.int64(),
    "INT": pa.int32(),
    "BOOLEAN": pa.bool_(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
    "DATE": pa.date32(),
}
FINISHED = ("finished", "stopped")


def arrow_schema(spec: TableSpec) -> pa.Schema:
    """The Arrow schema of a table spec (Spark DDL types mapped to Arrow)."""
    try:
        return pa.schema([pa.field(c, _ARROW[t]) for c, t in spec.columns])
    except KeyError as exc:
        raise DataValidationError(f"{spec.name}.columns", spec.ddl, f"no Arrow mapping for type {exc}") from exc


def to_arrow(df: pd.DataFrame, spec: TableSpec) -> pa.Table:
    """``df`` as an Arrow table with exactly the spec's columns and types; validates the keys."""
    missing = [c for c in spec.column_names if c not in df.columns]
    if missing:
        raise DataValidationError(f"{spec.name}.columns", list(df.columns), f"missing {missing}")
    for key in spec.keys:
        if df[key].isna().any():
            raise DataValidationError(f"{spec.name}.{key}", None, "key column has nulls")
    dup = df.duplicated(list(spec.keys))
    if dup.any():
        row = df[dup].iloc[0]
        raise DataValidationError(f"{spec.name}.keys", [row[k] for k in spec.keys], "duplicate key")
    frame = df[list(spec.column_names)].copy()
    for col, typ in spec.columns:
        if typ == "TIMESTAMP":
            ts = pd.to_datetime(frame[col])
            if len(ts) and ts.dt.tz is None:
                raise DataValidationError(f"{spec.name}.{col}", ts.iloc[0], "must be UTC-aware")
            frame[col] = ts.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
        elif typ == "STRING":
            frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
    return pa.Table.from_pandas(frame, schema=arrow_schema(spec), preserve_index=False)


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def write_run_rows(df: pd.DataFrame, spec: TableSpec, run_id: str, settings: Settings | None = None) -> int:
    """Replace ``run_id``'s rows of ``spec``'s Delta table with ``df`` (created if missing)."""
    from deltalake import write_deltalake
    from deltalake.exceptions import DeltaError

    if (df["run_id"] != run_id).any():
        raise DataValidationError("run_id", sorted(set(df["run_id"]) - {run_id}), f"rows of another run than {run_id}")
    table = to_arrow(df, spec)
    path = spec.path(settings)
    try:
        write_deltalake(
            path,
            table,
            mode="overwrite",
            predicate=f"run_id = {_sql_literal(run_id)}",
            description=spec.description,
        )
    except (DeltaError, OSError) as exc:
        raise InfrastructureError(f"writing {spec.name} at {path} for run {run_id}: {exc}") from exc
    return table.num_rows


def export_run(run_id: str, *, store_url: str | None = None, settings: Settings | None = None) -> dict[str, int]:
    """Export the finished run ``run_id`` from the store to trading.orders/fills/equity; rows per table.

    Idempotent: exporting the same run again replaces its rows (row counts do not change).
    """
    settings = settings or get_settings()
    store = TradeStore(store_url or TraderSettings().resolved_store_url(settings))
    header = store.run(run_id)
    if header is None:
        raise DataValidationError("run_id", run_id, "no such run in the trading store")
    if header["status"] not in FINISHED:
        raise DataValidationError("run_id", run_id, f"run status is {header['status']!r}; export needs {FINISHED}")
    mode = str(header["mode"])
    frames: list[tuple[TableSpec, pd.DataFrame]] = [
        (TRADING_ORDERS, store.orders(run_id)),
        (TRADING_FILLS, store.fills(run_id)),
        (TRADING_EQUITY, store.equity(run_id)),
    ]
    counts: dict[str, int] = {}
    for spec, df in frames:
        rows: Any = df.assign(run_id=run_id, mode=mode)
        counts[spec.name] = write_run_rows(rows, spec, run_id, settings)
    log.info("trader.export", extra={"run_id": run_id, "mode": mode, "rows": counts})
    return counts
