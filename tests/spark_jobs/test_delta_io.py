"""The shared Delta I/O helpers: error translation and interval SQL (no JVM), table create/check/MERGE (Spark)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from cryptolake.errors import (
    BrokerUnavailableError,
    CommitConflictError,
    DataValidationError,
    InfrastructureError,
    SchemaMismatchError,
)
from cryptolake.tables import TableSpec
from spark_jobs.delta_io import (
    check_interval,
    date_filter,
    ensure_table,
    interval_filter,
    merge_rows,
    read_interval,
    sql_ts,
    table_exists,
    translate_spark_error,
)


# --- unit (no JVM) ------------------------------------------------------------------------------
def test_spark_errors_are_translated() -> None:
    conflict = translate_spark_error(RuntimeError("io.delta.exceptions.ConcurrentAppendException: x"), "land")
    assert isinstance(conflict, CommitConflictError)
    assert isinstance(translate_spark_error(RuntimeError("[DELTA_FAILED_TO_MERGE_FIELDS] a"), "w"),
                      SchemaMismatchError)
    timeout = translate_spark_error(RuntimeError("org.apache.kafka TimeoutException: x"), "read")
    assert isinstance(timeout, BrokerUnavailableError)
    other = translate_spark_error(RuntimeError("boom"), "land x")
    assert isinstance(other, InfrastructureError) and str(other) == "land x: boom"
    ours = SchemaMismatchError("already ours")
    assert translate_spark_error(ours, "x") is ours


def test_check_interval_names_the_bad_field() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    check_interval(start, start + timedelta(hours=1))
    with pytest.raises(DataValidationError) as naive:
        check_interval(datetime(2024, 1, 1), start)
    assert naive.value.field == "start"
    with pytest.raises(DataValidationError) as offset:
        check_interval(start, datetime(2024, 1, 2, tzinfo=timezone(timedelta(hours=2))))
    assert offset.value.field == "end"
    with pytest.raises(DataValidationError, match="must be after start") as empty:
        check_interval(start, start)
    assert empty.value.field == "end"


def test_interval_sql_literals() -> None:
    start = datetime(2024, 1, 31, 23, 30, tzinfo=UTC)
    end = datetime(2024, 2, 1, 0, 30, 0, 250_000, tzinfo=UTC)
    assert sql_ts(end) == "TIMESTAMP '2024-02-01 00:30:00.250000'"
    assert date_filter("t.d", start, end) == "t.d >= DATE '2024-01-31' AND t.d <= DATE '2024-02-01'"
    assert interval_filter("d", "ts", start, end) == (
        "d >= DATE '2024-01-31' AND d <= DATE '2024-02-01' AND ts >= TIMESTAMP '2024-01-31 23:30:00.000000' "
        "AND ts < TIMESTAMP '2024-02-01 00:30:00.250000'")
    monthly = interval_filter("m", "ts", start, end, date_start=start.replace(day=1))
    assert monthly.startswith("m >= DATE '2024-01-01' AND m <= DATE '2024-02-01' AND ts >= ")


# --- Spark ---------------------------------------------------------------------------------------
# SYNTHETIC table and rows (not market data)
SPEC = TableSpec(
    name="ops.delta_io_test",
    columns=(("k", "STRING"), ("d", "DATE"), ("v", "DOUBLE")),
    keys=("k",),
    partition_by=("d",),
    description="synthetic table of the delta_io tests",
)


@pytest.mark.spark
def test_ensure_table_creates_checks_and_merge_is_idempotent(spark, lake_settings) -> None:
    from datetime import date

    assert not table_exists(spark, SPEC, lake_settings)
    table = ensure_table(spark, SPEC, lake_settings)
    assert table_exists(spark, SPEC, lake_settings)
    detail = table.detail().collect()[0]
    assert list(detail["partitionColumns"]) == ["d"]
    assert detail["description"] == SPEC.description

    ddl = "k STRING, d DATE, v DOUBLE"
    rows = spark.createDataFrame([("a", date(2024, 1, 1), 1.0), ("b", date(2024, 1, 1), 2.0)], ddl)
    first = merge_rows(spark, rows, SPEC, target_filter="t.d = DATE '2024-01-01'", settings=lake_settings)
    assert (first["inserted"], first["updated"]) == (2, 0)
    again = merge_rows(spark, rows, SPEC, target_filter="t.d = DATE '2024-01-01'", settings=lake_settings)
    assert (again["inserted"], again["updated"]) == (0, 0)
    changed = spark.createDataFrame([("a", date(2024, 1, 1), 5.0)], ddl)
    third = merge_rows(spark, changed, SPEC, target_filter="t.d = DATE '2024-01-01'", settings=lake_settings)
    assert (third["inserted"], third["updated"]) == (0, 1)
    got = {r["k"]: r["v"] for r in spark.read.format("delta").load(SPEC.path(lake_settings)).collect()}
    assert got == {"a": 5.0, "b": 2.0}
    day = datetime(2024, 1, 1, tzinfo=UTC)
    assert read_interval(spark, SPEC, day, day + timedelta(days=1), lake_settings,
                         date_column="d", time_column="CAST(d AS TIMESTAMP)").count() == 2
    missing = TableSpec(name="ops.delta_io_missing", columns=(("k", "STRING"),))
    assert read_interval(spark, missing, day, day + timedelta(days=1), lake_settings) is None

    other = TableSpec(name=SPEC.name, columns=(("k", "STRING"), ("w", "DOUBLE")), keys=("k",))
    with pytest.raises(SchemaMismatchError, match="spec says"):
        ensure_table(spark, other, lake_settings)


@pytest.mark.spark
def test_ensure_table_adds_a_new_spec_column_in_place(spark, lake_settings) -> None:
    from datetime import date

    # SYNTHETIC: a table written before the spec gained column "w" between "d" and "v"
    old = TableSpec(name="ops.delta_io_evolve", columns=(("k", "STRING"), ("d", "DATE"), ("v", "DOUBLE")),
                    keys=("k",), partition_by=("d",))
    new = TableSpec(name=old.name, columns=(("k", "STRING"), ("d", "DATE"), ("w", "BOOLEAN"), ("v", "DOUBLE")),
                    keys=("k",), partition_by=("d",))
    rows = spark.createDataFrame([("a", date(2024, 1, 1), 1.0)], "k STRING, d DATE, v DOUBLE")
    merge_rows(spark, rows, old, target_filter="true", settings=lake_settings)

    table = ensure_table(spark, new, lake_settings)
    assert tuple(f.name for f in table.toDF().schema.fields) == new.column_names
    assert [tuple(r) for r in table.toDF().collect()] == [("a", date(2024, 1, 1), None, 1.0)]
    fresh = spark.createDataFrame([("a", date(2024, 1, 1), True, 1.0), ("b", date(2024, 1, 1), False, 2.0)],
                                  new.ddl)
    metrics = merge_rows(spark, fresh, new, target_filter="true", settings=lake_settings)
    assert (metrics["inserted"], metrics["updated"]) == (1, 1)  # NULL -> True counts as a change

    renamed = TableSpec(name=old.name, columns=(("k", "STRING"), ("d", "DATE"), ("x", "DOUBLE")), keys=("k",))
    with pytest.raises(SchemaMismatchError, match="rebuild the table"):
        ensure_table(spark, renamed, lake_settings)
