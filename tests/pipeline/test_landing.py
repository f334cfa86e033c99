"""The landing audit on a SYNTHETIC bronze table: rows counted by landed_time per interval, a re-run
replaces the interval's row, a Kafka offset landed twice fails the run (after recording it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from cryptolake import topics
from cryptolake.errors import DataValidationError
from cryptolake.tables import LANDING_AUDIT, bronze_spec
from pipeline import landing
from tests.conftest import settings_in

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _bronze(settings, rows: list[tuple[int, datetime]]) -> None:
    """SYNTHETIC bronze.market_ohlcv rows: (offset, landed_time), ingested 2 s before landing."""
    from deltalake import write_deltalake

    ts = pa.timestamp("us", tz="UTC")
    table = pa.table({
        "topic": pa.array([topics.MARKET_OHLCV] * len(rows)),
        "partition": pa.array([0] * len(rows), pa.int32()),
        "offset": pa.array([o for o, _ in rows], pa.int64()),
        "event_time": pa.array([T0 - timedelta(days=1000) + timedelta(minutes=o) for o, _ in rows], ts),
        "ingest_time": pa.array([t - timedelta(seconds=2) for _, t in rows], ts),
        "landed_time": pa.array([t for _, t in rows], ts),
    })
    write_deltalake(bronze_spec(topics.MARKET_OHLCV).path(settings), table, mode="append")


def _audit(settings) -> list[dict]:
    from deltalake import DeltaTable

    rows = DeltaTable(LANDING_AUDIT.path(settings)).to_pyarrow_table().to_pylist()
    return sorted(rows, key=lambda r: r["interval_start"])


def test_each_interval_counts_its_landed_rows_and_a_rerun_replaces_its_row(tmp_path):
    settings = settings_in(tmp_path)
    _bronze(settings, [(0, T0), (1, T0 + timedelta(seconds=5)), (2, T0 + timedelta(seconds=19)),
                       (3, T0 + timedelta(seconds=20))])
    first = landing.audit_interval(T0.isoformat(), (T0 + timedelta(seconds=20)).isoformat(), settings=settings)
    assert first["rows"] == 3 and first["duplicates"] == 0 and first["status"] == "ok"
    assert first["lag_p50_s"] == pytest.approx(2.0) and first["lag_max_s"] == pytest.approx(2.0)
    again = landing.audit_interval(T0.isoformat(), (T0 + timedelta(seconds=20)).isoformat(), settings=settings)
    assert again["rows"] == 3
    empty = landing.audit_interval((T0 - timedelta(seconds=20)).isoformat(), T0.isoformat(), settings=settings)
    assert empty["rows"] == 0 and empty["status"] == "empty"
    rows = _audit(settings)
    assert [(r["interval_start"], r["rows"], r["status"]) for r in rows] == [
        (T0 - timedelta(seconds=20), 0, "empty"), (T0, 3, "ok")]


def test_an_offset_landed_twice_is_recorded_then_fails_the_run(tmp_path):
    settings = settings_in(tmp_path)
    _bronze(settings, [(7, T0 + timedelta(seconds=1)), (8, T0 + timedelta(seconds=2))])
    _bronze(settings, [(7, T0 + timedelta(seconds=40))])  # replayed into a later interval: exactly-once broken
    with pytest.raises(DataValidationError, match="more than once"):
        landing.audit_interval(T0.isoformat(), (T0 + timedelta(seconds=20)).isoformat(), settings=settings)
    [row] = _audit(settings)
    assert (row["rows"], row["duplicates"], row["status"]) == (2, 1, "duplicates")
