"""Audit of the streaming landing, one data interval at a time (what ``dags/market_landing.py`` wires).

While `cryptolake up` streams, the Spark driver lands ``market.ohlcv`` into bronze continuously and
stamps each batch with its ``landed_time`` (wall clock). A scheduled run judges the bronze rows landed
in its interval ``[start, end)``: how many, whether any Kafka offset was landed twice (exactly-once
broken), how many payloads were quarantined, and the ingest -> landed lag. Read-only on the lake
(DuckDB's delta scan, no JVM: a run takes seconds beside the streaming driver); its one write is the
interval's row of ``ops.landing_audit``, a predicate overwrite, so re-running an interval replaces it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from cryptolake import topics
from cryptolake.duck import delta_exists, delta_storage_options, duck_uri, scan_literal
from cryptolake.errors import DataValidationError, InfrastructureError
from cryptolake.logs import get_logger
from cryptolake.settings import Settings, get_settings
from cryptolake.tables import LANDING_AUDIT, bronze_spec, dead_letter_spec
from pipeline.interval import Interval

log = get_logger(__name__)

_STATS = """
WITH landed AS (
    SELECT "partition", "offset", event_time, ingest_time, landed_time FROM delta_scan('{path}')
    WHERE landed_time >= ?::TIMESTAMPTZ AND landed_time < ?::TIMESTAMPTZ
), twice AS (
    SELECT "partition", "offset" FROM delta_scan('{path}')
    WHERE ("partition", "offset") IN (SELECT ("partition", "offset") FROM landed)
    GROUP BY "partition", "offset" HAVING count(*) > 1
)
SELECT count(*),
       (SELECT count(*) FROM landed l JOIN twice t USING ("partition", "offset")),
       epoch_ms(min(event_time)), epoch_ms(max(event_time)),
       quantile_cont(epoch_ms(landed_time) - epoch_ms(ingest_time), 0.5) / 1000.0,
       max(epoch_ms(landed_time) - epoch_ms(ingest_time)) / 1000.0
FROM landed
"""


def _ts(ms: Any) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(int(ms) / 1000, tz=UTC)


def last_commit_s(path: str, settings: Settings) -> float | None:
    """The newest commit's time of a Delta table (epoch seconds), None while it does not exist."""
    from deltalake import DeltaTable

    if not delta_exists(path, settings):
        return None
    history = DeltaTable(duck_uri(path), storage_options=delta_storage_options(settings) or None).history(1)
    return float(history[0]["timestamp"]) / 1000 if history else None


def settle(path: str, end: datetime, settings: Settings, timeout_s: float) -> bool:
    """Wait until the table has a commit at or after ``end`` (up to ``timeout_s``); True if it has.

    A micro-batch stamps its rows with its start: one that started before ``end`` may commit after it.
    The landing commits one batch after the other, so a commit at or after ``end`` means every batch
    stamped before ``end`` is in the table. An idle stream (no new data) makes no such commit: then
    the audit judges what is there after ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        newest = last_commit_s(path, settings)
        if newest is not None and newest >= end.timestamp():
            return True
        if newest is None or time.monotonic() >= deadline:
            return False
        time.sleep(1.0)


def interval_stats(topic: str, iv: Interval, settings: Settings) -> dict[str, Any]:
    """The bronze rows of ``topic`` landed in ``iv``: counts, duplicated offsets, event range, lag."""
    from cryptolake.duck import connect

    bounds = [iv.start.isoformat(), iv.end.isoformat()]
    bronze, quarantine = bronze_spec(topic).path(settings), dead_letter_spec(topic).path(settings)
    out: dict[str, Any] = {"rows": 0, "duplicates": 0, "quarantined": 0, "min_event_time": None,
                           "max_event_time": None, "lag_p50_s": None, "lag_max_s": None}
    con = connect(settings, views=False)
    try:
        con.execute("SET TimeZone = 'UTC'")
        if delta_exists(bronze, settings):
            sql = _STATS.format(path=scan_literal(bronze))
            rows, dups, lo, hi, p50, worst = con.execute(sql, bounds).fetchone() or (0, 0, None, None, None, None)
            out |= {"rows": int(rows), "duplicates": int(dups or 0), "min_event_time": _ts(lo),
                    "max_event_time": _ts(hi), "lag_p50_s": None if p50 is None else float(p50),
                    "lag_max_s": None if worst is None else float(worst)}
        if delta_exists(quarantine, settings):
            found = con.execute(f"SELECT count(*) FROM delta_scan('{scan_literal(quarantine)}') "
                                "WHERE landed_time >= ?::TIMESTAMPTZ AND landed_time < ?::TIMESTAMPTZ",
                                bounds).fetchone()
            out["quarantined"] = int(found[0]) if found else 0
    finally:
        con.close()
    return out


def write_audit(row: dict[str, Any], settings: Settings) -> None:
    """Replace the interval's row of ``ops.landing_audit`` (created on the first write)."""
    import pyarrow as pa
    from deltalake import write_deltalake
    from deltalake.exceptions import DeltaError

    from trader.export import arrow_schema

    table = pa.Table.from_pylist([row], schema=arrow_schema(LANDING_AUDIT))
    start = row["interval_start"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    predicate = f"topic = '{row['topic']}' AND interval_start = '{start}'"
    path = LANDING_AUDIT.path(settings)
    try:
        write_deltalake(duck_uri(path), table, mode="overwrite", predicate=predicate,
                        storage_options=delta_storage_options(settings) or None,
                        description=LANDING_AUDIT.description)
    except (DeltaError, OSError) as exc:
        raise InfrastructureError(f"writing {LANDING_AUDIT.name} at {path}: {exc}") from exc


def audit_interval(start: str, end: str, topic: str = topics.MARKET_OHLCV, settings: Settings | None = None,
                   settle_s: float = 30.0) -> dict[str, Any]:
    """Audit ``topic``'s landing in ``[start, end)`` once its batches settled (:func:`settle`), record it,
    and fail the run on a duplicated offset."""
    settings = settings or get_settings()
    iv = Interval.parse(start, end)
    settle(bronze_spec(topic).path(settings), iv.end, settings, settle_s)
    stats = interval_stats(topic, iv, settings)
    status = "duplicates" if stats["duplicates"] else "ok" if stats["rows"] else "empty"
    row = {"topic": topic, "interval_start": iv.start, "interval_end": iv.end, **stats, "status": status,
           "audited_at": datetime.now(UTC)}
    write_audit(row, settings)
    log.info("landing.audited", extra={"topic": topic, "start": iv.start.isoformat(), "rows": stats["rows"],
                                       "duplicates": stats["duplicates"], "status": status})
    if stats["duplicates"]:
        raise DataValidationError(f"{bronze_spec(topic).name}.offset", stats["duplicates"],
                                  f"rows landed in {iv.tag} whose Kafka offset is in bronze more than once")
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}
