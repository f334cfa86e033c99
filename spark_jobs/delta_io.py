"""THE shared Delta I/O of the Spark jobs: create/check tables, MERGE rows, translate errors.

Bronze landing, silver and gold jobs all go through here, so a table is created one way (its
partitioning, comment and stats columns from its :class:`~cryptolake.tables.TableSpec`), checked
one way (its columns must be the spec's) and written one way (MERGE on the spec's keys, retried
on a commit conflict). The interval helpers build the SQL every interval-scoped job filters on.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from cryptolake.errors import (
    BrokerUnavailableError,
    CommitConflictError,
    CryptolakeError,
    DataValidationError,
    InfrastructureError,
    SchemaMismatchError,
)
from cryptolake.logs import get_logger
from cryptolake.retry import call_with_retry
from cryptolake.settings import Settings
from cryptolake.tables import TableSpec

if TYPE_CHECKING:
    from delta.tables import DeltaTable
    from pyspark.sql import DataFrame, SparkSession

log = get_logger(__name__)

_CONFLICTS = ("ConcurrentAppendException", "ConcurrentWriteException", "ConcurrentDeleteReadException",
              "ConcurrentTransactionException", "ProtocolChangedException", "MetadataChangedException",
              "DELTA_CONCURRENT")


def translate_spark_error(exc: BaseException, what: str) -> CryptolakeError:
    """Map py4j/Delta/streaming errors onto cryptolake errors (commit conflicts are retryable)."""
    if isinstance(exc, CryptolakeError):
        return exc
    text = str(exc)
    if any(s in text for s in _CONFLICTS) or "Concurrent" in type(exc).__name__:
        return CommitConflictError(f"{what}: concurrent Delta commit: {text[:500]}")
    if "DELTA_FAILED_TO_MERGE_FIELDS" in text or "schema mismatch" in text.lower() or "DELTA_SCHEMA" in text:
        return SchemaMismatchError(f"{what}: {text[:1000]}")
    if "TimeoutException" in text and "kafka" in text.lower():
        return BrokerUnavailableError(f"{what}: {text[:500]}")
    return InfrastructureError(f"{what}: {text[:2000]}")


def ensure_table(spark: SparkSession, spec: TableSpec, settings: Settings | None = None) -> DeltaTable:
    """The spec's Delta table, created empty if missing, evolved if the spec added columns.

    A new table gets the spec's partitioning and description; a table with a raw ``payload``
    column keeps no min/max stats on payload/reason text (they cost CPU on every write and never
    prune). An existing table that lacks columns the spec has added (and differs in nothing else)
    gets them, at the spec's position, NULL in its existing rows (:func:`add_missing_columns`);
    any other difference raises :class:`SchemaMismatchError` saying how to rebuild the table.
    """
    from delta.tables import DeltaTable
    from pyspark.sql.types import StructType

    path = spec.path(settings)
    try:
        if DeltaTable.isDeltaTable(spark, path):
            table = DeltaTable.forPath(spark, path)
        else:
            schema = StructType.fromDDL(spec.ddl)
            if not isinstance(schema, StructType):
                raise SchemaMismatchError(f"{spec.name}: DDL {spec.ddl!r} is not a struct")
            builder = DeltaTable.createIfNotExists(spark).location(path).addColumns(schema)
            if spec.partition_by:
                builder = builder.partitionedBy(*spec.partition_by)
            if spec.description:
                builder = builder.comment(spec.description)
            if "payload" in spec.column_names:
                skip = ("payload", "reason", *spec.partition_by)
                stats = ",".join(c for c in spec.column_names if c not in skip)
                builder = builder.property("delta.dataSkippingStatsColumns", stats)
            table = builder.execute()
            log.info("delta.table_created", extra={"table": spec.name, "path": path})
        actual = tuple(f.name for f in table.toDF().schema.fields)
    except Exception as exc:  # py4j / Delta errors, translated at the boundary
        raise translate_spark_error(exc, f"create {spec.name} at {path}") from exc
    if actual != spec.column_names:
        add_missing_columns(spark, spec, actual, path)
        table = DeltaTable.forPath(spark, path)
    return table


def add_missing_columns(spark: SparkSession, spec: TableSpec, actual: tuple[str, ...], path: str) -> list[str]:
    """Delta schema evolution: add the spec's columns a table lacks (``ALTER TABLE ... ADD COLUMNS``).

    Only when the table's columns are the spec's minus some, in the spec's order; returns the
    columns added. A renamed, dropped or reordered column cannot be evolved into place: that raises.
    """
    missing = [c for c in spec.column_names if c not in actual]
    if tuple(c for c in spec.column_names if c in actual) != actual:
        raise SchemaMismatchError(
            f"{spec.name} at {path} has columns {actual}, spec says {spec.column_names}: only new columns are "
            f"added automatically; rebuild the table (delete {path} and re-run the job that writes {spec.name}, "
            "e.g. `make main` for the market tables)"
        )
    types = dict(spec.columns)
    for column in missing:
        i = spec.column_names.index(column)
        position = "FIRST" if i == 0 else f"AFTER {spec.column_names[i - 1]}"
        try:
            spark.sql(f"ALTER TABLE delta.`{path}` ADD COLUMNS ({column} {types[column]} {position})")
        except Exception as exc:  # py4j / Delta errors, translated at the boundary
            raise translate_spark_error(exc, f"add column {column} to {spec.name} at {path}") from exc
    log.info("delta.table_evolved", extra={"table": spec.name, "path": path, "added": missing})
    return missing


def table_exists(spark: SparkSession, spec: TableSpec, settings: Settings | None = None) -> bool:
    """Whether a Delta table exists at the spec's path."""
    from delta.tables import DeltaTable

    return bool(DeltaTable.isDeltaTable(spark, spec.path(settings)))


def merge_rows(
    spark: SparkSession,
    rows: DataFrame,
    spec: TableSpec,
    *,
    target_filter: str,
    settings: Settings | None = None,
) -> dict[str, int]:
    """MERGE ``rows`` into the spec's table on its keys; only rows whose values changed are updated.

    ``target_filter`` (SQL on the target alias ``t``) bounds the target rows touched, for
    partition pruning and to keep concurrent interval runs from conflicting. A commit conflict
    is retried (via :func:`cryptolake.retry.call_with_retry`); other failures are translated.
    Returns Delta's operation metrics (inserted/updated) and the new table version.
    """
    on = " AND ".join([f"t.{k} = s.{k}" for k in spec.keys] + [f"({target_filter})"])
    changed = " OR ".join(f"NOT (t.{c} <=> s.{c})" for c in spec.column_names if c not in spec.keys)

    def attempt() -> dict[str, int]:
        table = ensure_table(spark, spec, settings)
        try:
            (
                table.alias("t")
                .merge(rows.alias("s"), on)
                .whenMatchedUpdateAll(condition=changed)
                .whenNotMatchedInsertAll()
                .execute()
            )
            last = table.history(1).collect()[0]
        except Exception as exc:  # py4j / Delta errors, translated at the boundary
            raise translate_spark_error(exc, f"merge {spec.name}") from exc
        metrics = last["operationMetrics"] or {}
        return {
            "inserted": int(metrics.get("numTargetRowsInserted", 0)),
            "updated": int(metrics.get("numTargetRowsUpdated", 0)),
            "version": int(last["version"]),
        }

    return call_with_retry(attempt, what=f"merge {spec.name}")


# --- interval helpers ------------------------------------------------------------------------
def check_interval(start: datetime, end: datetime) -> None:
    """Raise naming the field unless ``start < end`` and both are UTC-aware."""
    for name, value in (("start", start), ("end", end)):
        if value.tzinfo is None or value.utcoffset() != timedelta(0):
            raise DataValidationError(name, value, "must be a UTC-aware datetime")
    if not start < end:
        raise DataValidationError("end", end, f"must be after start {start.isoformat()}")


def sql_ts(value: datetime) -> str:
    """A Spark SQL timestamp literal (microsecond precision) of a UTC datetime."""
    return f"TIMESTAMP '{value.strftime('%Y-%m-%d %H:%M:%S.%f')}'"


def date_filter(column: str, start: datetime, end: datetime) -> str:
    """SQL keeping the date partitions ``column`` that ``[start, end)`` touches (for pruning)."""
    return f"{column} >= DATE '{start.date().isoformat()}' AND {column} <= DATE '{end.date().isoformat()}'"


def interval_filter(date_column: str, time_column: str, start: datetime, end: datetime, *,
                    date_start: datetime | None = None) -> str:
    """SQL keeping rows with ``time_column`` in ``[start, end)``, pruned on the date partition ``date_column``.

    ``date_start`` is where the partition range begins when it is coarser than a day (a month).
    """
    return (f"{date_filter(date_column, date_start or start, end)} AND {time_column} >= {sql_ts(start)} "
            f"AND {time_column} < {sql_ts(end)}")


def read_interval(spark: SparkSession, spec: TableSpec, start: datetime, end: datetime,
                  settings: Settings | None = None, *, date_column: str = "event_date",
                  time_column: str = "event_time") -> DataFrame | None:
    """The spec's rows with ``time_column`` in ``[start, end)``, or None when the table does not exist."""
    if not table_exists(spark, spec, settings):
        return None
    return (spark.read.format("delta").load(spec.path(settings))
            .where(interval_filter(date_column, time_column, start, end)))


def append_once(df: DataFrame, path: str, app_id: str, version: int) -> None:
    """Delta idempotent append: a second append with the same ``(app_id, version)`` commits nothing.

    ``app_id`` names the writer (table + streaming query id), ``version`` its micro-batch id, so a
    batch replayed after a crash (Spark re-runs the batch the checkpoint has not committed) is skipped.
    """
    try:
        (df.write.format("delta").mode("append")
           .option("txnAppId", app_id).option("txnVersion", version).save(path))
    except Exception as exc:  # py4j / Delta errors, translated at the boundary
        raise translate_spark_error(exc, f"append to {path}") from exc
