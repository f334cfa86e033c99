"""Lake maintenance and freshness: OPTIMIZE ZORDER BY the keys, VACUUM, abandoned checkpoints, stale-table alerts.

- :func:`optimize` compacts a table's small files and Z-orders them by the table's keys (its
  :class:`cryptolake.tables.TableSpec`; partition columns cannot be Z-ordered and are left out).
- :func:`vacuum` removes files no longer referenced that are older than
  ``maintenance.vacuum_retention_hours``. Delta refuses less than its safe default (7 days: a
  reader or a streaming query may still need them) unless ``allow_short_retention`` is set; the
  setting is validated, never silently raised or lowered. Delta lists the table's files with
  ``maintenance.vacuum_listing_parallelism`` tasks (Spark's default, 10,000, is for big clusters).
- :func:`abandoned_checkpoints` / :func:`clean_checkpoints`: a streaming checkpoint (a folder with
  ``offsets/`` and ``metadata``) nothing has written to for ``checkpoint_abandoned_days`` is deleted.
  A query restarted on a deleted checkpoint starts over with a new query id, so the default (30
  days) is far past any restart; the live queries' folders can be passed as ``keep``.
- :func:`stale_alerts`: a table whose last commit, or newest event, is older than the limit raises
  a ``stale_data`` alert through the one alerter (:func:`pipeline.alerts.alerter`).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptolake.alerts import Alert, Alerter, AlertKind, Severity
from cryptolake.duck import lake_tables
from cryptolake.errors import InfrastructureError
from cryptolake.logs import get_logger
from cryptolake.settings import Settings
from cryptolake.tables import TABLES

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = get_logger(__name__)
DELTA_SAFE_RETENTION_HOURS = 168.0


def zorder_columns(table: str) -> tuple[str, ...]:
    """The keys of ``table`` that can be Z-ordered (not partition columns); empty for an unknown table."""
    spec = TABLES.get(table)
    if spec is None:
        return ()
    return tuple(k for k in spec.keys if k not in spec.partition_by)


def _files(spark: SparkSession, path: str) -> int:
    return int(spark.sql(f"DESCRIBE DETAIL delta.`{path}`").collect()[0]["numFiles"])


def optimize(spark: SparkSession, table: str, path: str) -> dict[str, Any]:
    """``OPTIMIZE ... ZORDER BY (keys)`` (plain bin-packing without keys): files before and after."""
    before = _files(spark, path)
    keys = zorder_columns(table)
    sql = f"OPTIMIZE delta.`{path}`" + (f" ZORDER BY ({', '.join(f'`{k}`' for k in keys)})" if keys else "")
    spark.sql(sql).collect()
    after = _files(spark, path)
    log.info("maintenance.optimized", extra={"table": table, "files_before": before, "files_after": after})
    return {"table": table, "zorder_by": list(keys), "files_before": before, "files_after": after}


def vacuum(spark: SparkSession, table: str, path: str, settings: Settings) -> dict[str, Any]:
    """``VACUUM ... RETAIN n HOURS``: unreferenced files older than the retention are deleted."""
    hours = settings.maintenance.vacuum_retention_hours
    check = "spark.databricks.delta.retentionDurationCheck.enabled"
    logging = "spark.databricks.delta.vacuum.logging.enabled"  # VACUUM START/END in the history: the count
    # Delta lists the table's files with this many tasks; Spark's default (10,000) made a VACUUM of a
    # ten-file table take over a minute on 2 cores.
    listing = "spark.sql.sources.parallelPartitionDiscovery.parallelism"
    listing_before = spark.conf.get(listing)  # the session's value (Spark's default unless configured)
    spark.conf.set(logging, "true")
    spark.conf.set(listing, str(settings.maintenance.vacuum_listing_parallelism))
    if hours < DELTA_SAFE_RETENTION_HOURS:
        spark.conf.set(check, "false")  # validated by the settings: only with allow_short_retention
    try:
        spark.sql(f"VACUUM delta.`{path}` RETAIN {hours:g} HOURS").collect()
        last = spark.sql(f"DESCRIBE HISTORY delta.`{path}` LIMIT 1").collect()[0]
    finally:
        spark.conf.unset(check)
        spark.conf.unset(logging)
        spark.conf.set(listing, str(listing_before))
    if last["operation"] != "VACUUM END":
        raise InfrastructureError(f"VACUUM of {table} left no VACUUM END commit (last: {last['operation']})")
    removed = int((last["operationMetrics"] or {}).get("numDeletedFiles", 0))
    log.info("maintenance.vacuumed", extra={"table": table, "retention_h": hours, "files_deleted": removed})
    return {"table": table, "retention_hours": hours, "files_deleted": int(removed)}


def maintain_lake(spark: SparkSession, settings: Settings) -> list[dict[str, Any]]:
    """OPTIMIZE then VACUUM every Delta table of the lake."""
    out = []
    for table, path in lake_tables(settings).items():
        out.append({**optimize(spark, table, path), **vacuum(spark, table, path, settings)})
    return out


def _newest_write(folder: Path) -> float:
    return max((p.stat().st_mtime for p in folder.rglob("*")), default=folder.stat().st_mtime)


def abandoned_checkpoints(root: Path, idle_s: float, now: float, keep: Iterable[Path] = ()) -> list[Path]:
    """Streaming checkpoints under ``root`` with no write for ``idle_s`` seconds (except ``keep``)."""
    if not root.exists():
        return []
    kept = {p.resolve() for p in keep}
    found = [p.parent for p in root.rglob("metadata") if p.is_file() and (p.parent / "offsets").is_dir()]
    return sorted(p for p in found if p.resolve() not in kept and now - _newest_write(p) > idle_s)


def clean_checkpoints(settings: Settings, *, now: float | None = None, keep: Iterable[Path] = ()) -> list[str]:
    """Delete the abandoned checkpoints of the (local) checkpoint root; the folders deleted."""
    root = Path(settings.paths.checkpoints().removeprefix("file://"))
    idle = settings.maintenance.checkpoint_abandoned_days * 86400.0
    gone = abandoned_checkpoints(root, idle, time.time() if now is None else now, keep)
    for folder in gone:
        shutil.rmtree(folder)
        log.info("maintenance.checkpoint_removed", extra={"checkpoint": str(folder)})
    return [str(p) for p in gone]


def stale_alerts(rows: Iterable[dict[str, Any]], now: float, settings: Settings, alerter: Alerter) -> list[Alert]:
    """Alert on each table (``{table, last_commit_s, max_event_s}``) whose commit or newest event is too old."""
    commit_limit, event_limit = settings.alerts.stale_data_after_s, settings.maintenance.max_event_age_s
    out = []
    for row in rows:
        table = str(row["table"])
        commit_age = now - float(row["last_commit_s"])
        event = row.get("max_event_s")
        event_age = None if event is None else now - float(event)
        why = []
        if commit_age > commit_limit:
            why.append(f"no commit for {commit_age / 3600:.1f} h (limit {commit_limit / 3600:g} h)")
        if event_age is not None and event_age > event_limit:
            why.append(f"newest event is {event_age / 3600:.1f} h old (limit {event_limit / 3600:g} h)")
        if why:
            alert = Alert(AlertKind.STALE_DATA, f"Stale data: {table}", f"{table}: " + "; ".join(why),
                          key=f"stale_data:{table}", severity=Severity.WARNING)
            alerter.raise_alert(alert)
            out.append(alert)
    return out


def freshness_rows(settings: Settings) -> list[dict[str, Any]]:
    """``{table, last_commit_s, max_event_s}`` of every lake table (Delta log and file statistics only)."""
    from infra.monitor import table_freshness

    rows = []
    for table, path in lake_tables(settings).items():
        committed, newest = table_freshness(path)
        rows.append({"table": table, "last_commit_s": committed, "max_event_s": newest})
    return rows
