"""gold.alt_features: point-in-time news/social/chain features per coin and bar (issue #5).

The computation is declared once, in ``cryptolake/sql/alt_features.sql`` (DuckDB ASOF joins on
``available_time`` over cumulative, duplicate-aggregated integer sums; windows (T - W, T]).
Why DuckDB and not Spark: the logic needs ASOF joins (which Spark lacks) and the per-bar table is
small; the inputs are read from Delta through :func:`cryptolake.duck.connect` and the result is
written with delta-rs ``write_deltalake(..., predicate=<interval>)``, so a re-run of an interval
replaces exactly that interval (idempotent). ``cryptolake/sql/alt_training_set.sql`` joins the table to the
gold training set.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from cryptolake.errors import DataValidationError, InfrastructureError, SchemaMismatchError, TableNotFoundError
from cryptolake.logs import get_logger
from cryptolake.queries import alt_training_set_sql, sql_text
from cryptolake.settings import Settings, get_settings
from cryptolake.tables import (
    ALT_FEATURE_COLUMNS,
    GOLD_ALT_FEATURES,
    SILVER_BARS,
    SILVER_CHAIN_ACTIVITY,
    SILVER_DOCUMENTS,
    TableSpec,
)
from spark_jobs.delta_io import check_interval

log = get_logger(__name__)

ALT_FEATURES_SQL = "alt_features"
SQL_FEATURES: tuple[str, ...] = ALT_FEATURE_COLUMNS
# A chain's activity is a feature of its native coin.
COIN_CHAINS: dict[str, str] = {"ETH": "ethereum", "BTC": "bitcoin", "BNB": "bsc", "MATIC": "polygon",
                               "AVAX": "avalanche", "SOL": "solana", "TRX": "tron"}
# The longest look-back of any feature (24 h) plus the hour bucket of sent_vol and a margin.
LOOKBACK = timedelta(hours=26)
DOC_COLUMNS = ("doc_key", "kind", "coins", "available_time", "sentiment")
CHAIN_COLUMNS = ("coin", "bucket_end", "tx_count", "active_addresses", "avg_gas_price_gwei", "whale_transfers",
                 "whale_volume", "exchange_inflow", "exchange_outflow")

_ARROW_TYPES: dict[str, pa.DataType] = {
    "STRING": pa.string(), "TIMESTAMP": pa.timestamp("us", tz="UTC"), "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(), "DATE": pa.date32(), "INT": pa.int32(), "BIGINT": pa.int64(),
    "ARRAY<STRING>": pa.list_(pa.string()),
}


@dataclass
class AltFeaturesResult:
    """What one gold.alt_features run did."""

    start: str
    end: str
    bars: int = 0
    documents: int = 0
    chain_buckets: int = 0
    rows: int = 0
    coins: list[str] = field(default_factory=list)
    table_version: int = -1
    seconds: float = 0.0


def arrow_schema(spec: TableSpec) -> pa.Schema:
    """The Arrow schema of a table spec (Spark DDL types -> Arrow; timestamps are UTC microseconds)."""
    try:
        return pa.schema([pa.field(c, _ARROW_TYPES[t.upper()]) for c, t in spec.columns])
    except KeyError as exc:
        raise SchemaMismatchError(f"{spec.name}: no Arrow type for {exc.args[0]}") from exc


def compute_alt_features(con: duckdb.DuckDBPyConnection, bars: Any, docs: Any, chain: Any = None) -> pd.DataFrame:
    """Run ``cryptolake/sql/alt_features.sql`` on DuckDB ``con`` for frames (pandas or Arrow); returns a pandas frame.

    ``bars``: coin, timeframe, ts, close_time (UTC); ``docs``: doc_key, kind ('news'|'social'), coins
    (list of symbols), available_time, sentiment; ``chain`` (optional): :data:`CHAIN_COLUMNS`.
    """
    con.execute("SET TimeZone = 'UTC'")
    con.register("alt_bars_src", bars)
    con.register("alt_docs_src", docs)
    if chain is None:
        chain = pd.DataFrame({c: pd.Series(dtype="float64") for c in CHAIN_COLUMNS}).astype(
            {"coin": "object", "bucket_end": "datetime64[us, UTC]"})
    con.register("alt_chain_src", chain)
    try:
        con.execute("CREATE OR REPLACE TEMP VIEW alt_bars AS SELECT coin, timeframe, ts, close_time FROM alt_bars_src")
        con.execute(f"CREATE OR REPLACE TEMP VIEW alt_docs AS SELECT {', '.join(DOC_COLUMNS)} FROM alt_docs_src")
        con.execute(f"CREATE OR REPLACE TEMP VIEW alt_chain AS SELECT {', '.join(CHAIN_COLUMNS)} FROM alt_chain_src")
        return con.execute(sql_text(ALT_FEATURES_SQL)).df()
    finally:
        for name in ("alt_bars_src", "alt_docs_src", "alt_chain_src"):
            con.unregister(name)


# --- training set -----------------------------------------------------------------------------
def alt_training_set(con: duckdb.DuckDBPyConnection, symbols: list[str], start: datetime, end: datetime,
                     as_of: datetime) -> pd.DataFrame:
    """Training rows (``cryptolake/sql/training_set.sql`` semantics) with the point-in-time alt features of their coin.

    ``con`` must have the views gold_features, gold_labels and gold_alt_features
    (:func:`cryptolake.duck.connect` creates them from the lake).
    """
    for name, value in (("start", start), ("end", end), ("as_of", as_of)):
        if value.tzinfo is None:
            raise DataValidationError(name, value, "must be timezone-aware (UTC)")
    con.execute("SET TimeZone = 'UTC'")
    params = {"symbols": list(symbols), "exchanges": None, "start": start, "end": end, "as_of": as_of}
    return con.execute(alt_training_set_sql(), params).df()


# --- the Delta writer ---------------------------------------------------------------------------
def _ts(value: datetime) -> str:
    return pd.Timestamp(value).tz_convert("UTC").strftime("%Y-%m-%d %H:%M:%S.%f")


def _views(con: duckdb.DuckDBPyConnection, settings: Settings) -> dict[str, bool]:
    """Which silver inputs exist (cryptolake.duck created a view per lake table)."""
    names = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    return {spec.name: spec.name.replace(".", "_") in names
            for spec in (SILVER_BARS, SILVER_DOCUMENTS, SILVER_CHAIN_ACTIVITY)}


def _input_views(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime,
                 timeframes: tuple[str, ...] | None, have: dict[str, bool]) -> None:
    """alt_bars / alt_docs / alt_chain over the silver tables, scoped to the interval and its look-back."""
    lo, hi, back = _ts(start), _ts(end), _ts(pd.Timestamp(start).floor("h").to_pydatetime() - LOOKBACK)
    tf = ""
    if timeframes:
        tf = " AND timeframe IN (" + ", ".join("'" + t.replace("'", "''") + "'" for t in timeframes) + ")"
    con.execute(f"""CREATE OR REPLACE TEMP VIEW alt_bars AS
        SELECT DISTINCT upper(regexp_extract(symbol, '^[^/:-]+')) AS coin, timeframe, open_time AS ts, close_time
        FROM silver_bars
        WHERE bar_date >= CAST(TIMESTAMPTZ '{lo}+00' AS DATE) AND bar_date <= CAST(TIMESTAMPTZ '{hi}+00' AS DATE)
          AND open_time >= TIMESTAMPTZ '{lo}+00' AND open_time < TIMESTAMPTZ '{hi}+00'{tf}""")
    upper = "(SELECT max(close_time) FROM alt_bars)"
    if have[SILVER_DOCUMENTS.name]:
        con.execute(f"""CREATE OR REPLACE TEMP VIEW alt_docs AS
            SELECT {', '.join(DOC_COLUMNS)} FROM silver_documents
            WHERE available_time > TIMESTAMPTZ '{back}+00' AND available_time <= {upper}""")
    else:
        con.execute("""CREATE OR REPLACE TEMP VIEW alt_docs AS
            SELECT NULL::VARCHAR AS doc_key, NULL::VARCHAR AS kind, NULL::VARCHAR[] AS coins,
                   NULL::TIMESTAMPTZ AS available_time, NULL::DOUBLE AS sentiment WHERE false""")
    chains = ", ".join(f"('{c}', '{ch}')" for c, ch in COIN_CHAINS.items())
    if have[SILVER_CHAIN_ACTIVITY.name]:
        con.execute(f"""CREATE OR REPLACE TEMP VIEW alt_chain AS
            SELECT m.coin, c.bucket_end, c.tx_count, c.active_addresses, c.avg_gas_price_gwei, c.whale_transfers,
                   c.whale_volume, c.exchange_inflow, c.exchange_outflow
            FROM silver_chain_activity c JOIN (VALUES {chains}) AS m(coin, chain) ON m.chain = c.chain
            WHERE c.bucket_end > TIMESTAMPTZ '{back}+00' AND c.bucket_end <= {upper}""")
    else:
        con.execute("""CREATE OR REPLACE TEMP VIEW alt_chain AS
            SELECT NULL::VARCHAR AS coin, NULL::TIMESTAMPTZ AS bucket_end, NULL::BIGINT AS tx_count,
                   NULL::BIGINT AS active_addresses, NULL::DOUBLE AS avg_gas_price_gwei,
                   NULL::BIGINT AS whale_transfers,
                   NULL::DOUBLE AS whale_volume, NULL::DOUBLE AS exchange_inflow, NULL::DOUBLE AS exchange_outflow
            WHERE false""")


def validate_alt_features(table: pa.Table, start: datetime, end: datetime) -> None:
    """Check rows before writing; raises naming the bad field and value."""
    if tuple(table.column_names) != GOLD_ALT_FEATURES.column_names:
        raise SchemaMismatchError(f"gold.alt_features rows have {table.column_names}, "
                                  f"spec {GOLD_ALT_FEATURES.column_names}")
    df = table.select(["coin", "timeframe", "ts", "close_time"]).to_pandas()
    if df[["coin", "timeframe", "ts"]].isna().any().any():
        raise DataValidationError("coin/timeframe/ts", None, "null key")
    dup = df.duplicated(["coin", "timeframe", "ts"])
    if dup.any():
        first = df[dup].iloc[0]
        raise DataValidationError("ts", str(first.ts), f"duplicate key for {first.coin} {first.timeframe}")
    lo, hi = pd.Timestamp(start), pd.Timestamp(end)
    outside = df[(df.ts < lo) | (df.ts >= hi)]
    if len(outside):
        raise DataValidationError("ts", str(outside.ts.iloc[0]), f"outside [{start}, {end})")
    early = df[df.close_time <= df.ts]
    if len(early):
        raise DataValidationError("close_time", str(early.close_time.iloc[0]), "not after the bar's open time")
    feats = table.select(list(ALT_FEATURE_COLUMNS)).to_pandas()
    for col in ALT_FEATURE_COLUMNS:
        s = feats[col].dropna()
        if col.startswith("sent_mean") and not s.between(-1, 1).all():
            raise DataValidationError(col, float(s[~s.between(-1, 1)].iloc[0]), "must lie in [-1, 1]")
        if (col.startswith(("news_count", "post_count", "sent_std", "sent_vol", "chain_tx", "chain_active",
                            "chain_whale")) and (s < 0).any()):
            raise DataValidationError(col, float(s[s < 0].iloc[0]), "must not be negative")


def _ensure_table(path: str) -> None:
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError as DeltaTableNotFound

    try:
        DeltaTable(path)
    except DeltaTableNotFound:
        DeltaTable.create(path, schema=arrow_schema(GOLD_ALT_FEATURES),
                          partition_by=list(GOLD_ALT_FEATURES.partition_by),
                          description=GOLD_ALT_FEATURES.description)
        log.info("gold.alt_features.created", extra={"path": path})


def run_gold_alt_features(start: datetime, end: datetime, settings: Settings | None = None, *,
                          timeframes: tuple[str, ...] | None = None) -> AltFeaturesResult:
    """Compute gold.alt_features for the bars opening in ``[start, end)`` and replace that interval.

    Reads silver.bars (the bar grid: one row per coin, timeframe and bar, across venues),
    silver.documents and silver.chain_activity (absent inputs give empty features, with a warning);
    writes with ``predicate`` = the interval, so a re-run leaves the table unchanged.
    """
    from deltalake import DeltaTable, write_deltalake

    from cryptolake import duck

    settings = settings or get_settings()
    check_interval(start, end)
    t0 = time.monotonic()
    result = AltFeaturesResult(start=start.isoformat(), end=end.isoformat())
    con = duck.connect(settings)
    try:
        con.execute("SET TimeZone = 'UTC'")
        have = _views(con, settings)
        if not have[SILVER_BARS.name]:
            raise TableNotFoundError(f"{SILVER_BARS.name} at {SILVER_BARS.path(settings)}: the bar grid is needed")
        for name, ok in have.items():
            if not ok:
                log.warning("gold.alt_features.missing_input", extra={"table": name})
        _input_views(con, start, end, timeframes, have)
        result.bars = int(con.execute("SELECT count(*) FROM alt_bars").fetchone()[0])  # type: ignore[index]
        result.documents = int(con.execute("SELECT count(*) FROM alt_docs").fetchone()[0])  # type: ignore[index]
        result.chain_buckets = int(con.execute("SELECT count(*) FROM alt_chain").fetchone()[0])  # type: ignore[index]
        log.info("gold.alt_features.inputs", extra={"start": result.start, "end": result.end, "bars": result.bars,
                                                    "documents": result.documents,
                                                    "chain_buckets": result.chain_buckets})
        if result.bars == 0:
            log.warning("gold.alt_features.no_bars", extra={"start": result.start, "end": result.end})
            return result
        cols = ", ".join(("coin", "timeframe", "ts", "close_time", *ALT_FEATURE_COLUMNS))
        rel = con.execute(f"SELECT {cols}, CAST(ts AS DATE) AS bar_date FROM ({sql_text(ALT_FEATURES_SQL)})")
        table = rel.fetch_arrow_table().cast(arrow_schema(GOLD_ALT_FEATURES))
    except duckdb.Error as exc:
        raise InfrastructureError(f"gold.alt_features query failed for [{start}, {end}): {exc}") from exc
    finally:
        con.close()
    validate_alt_features(table, start, end)
    result.rows, result.coins = table.num_rows, sorted(set(table.column("coin").to_pylist()))
    path = GOLD_ALT_FEATURES.path(settings)
    _ensure_table(path)
    predicate = (f"bar_date >= '{pd.Timestamp(start).date()}' AND bar_date <= '{pd.Timestamp(end).date()}' "
                 f"AND ts >= '{_ts(start)}' AND ts < '{_ts(end)}'")
    if timeframes:
        predicate += " AND timeframe IN (" + ", ".join(f"'{t}'" for t in timeframes) + ")"
    try:
        write_deltalake(path, table, mode="overwrite", predicate=predicate,
                        partition_by=list(GOLD_ALT_FEATURES.partition_by))
        result.table_version = int(DeltaTable(path).version())
    except Exception as exc:  # delta-rs raises its own exception types (DeltaError, CommitFailedError, ...)
        raise InfrastructureError(f"writing gold.alt_features at {path} failed: {exc}") from exc
    result.seconds = round(time.monotonic() - t0, 2)
    log.info("gold.alt_features.done", extra=vars(result))
    return result
