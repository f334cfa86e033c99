"""Maintenance: stale-table alerts and abandoned checkpoints (fast), OPTIMIZE ZORDER and VACUUM (Spark).

The bars written to the lake here are SYNTHETIC (a few rows per append, to make small files).
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cryptolake.alerts import Alerter, AlertKind
from cryptolake.settings import AlertSettings, MaintenanceSettings, Settings
from pipeline import maintenance
from tests.conftest import settings_in

NOW = 1_800_000_000.0


def test_stale_alerts_name_the_table_and_go_through_the_alerter():
    got = []
    alerter = Alerter(AlertSettings(), lambda a: got.append(a) or True)
    rows = [{"table": "silver.bars", "last_commit_s": NOW - 3 * 3600, "max_event_s": NOW - 7 * 3600},
            {"table": "gold.features", "last_commit_s": NOW - 60, "max_event_s": NOW - 120},
            {"table": "ops.audit", "last_commit_s": NOW - 60, "max_event_s": None}]
    out = maintenance.stale_alerts(rows, NOW, Settings(), alerter)
    assert [a.key for a in out] == ["stale_data:silver.bars"] and got == out
    assert out[0].kind is AlertKind.STALE_DATA
    assert out[0].body == ("silver.bars: no commit for 3.0 h (limit 2 h); newest event is 7.0 h old (limit 6 h)")
    maintenance.stale_alerts(rows, NOW, Settings(), alerter)  # the next check within the dedup window
    assert len(got) == 1 and alerter.counts.deduplicated == 1


def _checkpoint(root: Path, name: str, age_s: float) -> Path:
    d = root / name
    (d / "offsets").mkdir(parents=True)
    for f in (d / "metadata", d / "offsets" / "0"):
        f.write_text("{}")
        os.utime(f, (NOW - age_s, NOW - age_s))
    os.utime(d / "offsets", (NOW - age_s, NOW - age_s))
    os.utime(d, (NOW - age_s, NOW - age_s))
    return d


def test_only_long_idle_checkpoints_outside_keep_are_removed(tmp_path):
    root = tmp_path / "checkpoints"
    old = _checkpoint(root, "landing/market.news", 40 * 86400)
    kept = _checkpoint(root, "landing/market.ohlcv", 40 * 86400)
    live = _checkpoint(root, "scorer/gold", 3600)
    (root / "not-a-checkpoint").mkdir()
    assert maintenance.abandoned_checkpoints(root, 30 * 86400, NOW, keep=[kept]) == [old]
    settings = settings_in(tmp_path)
    assert maintenance.clean_checkpoints(settings, now=NOW, keep=[kept]) == [str(old)]
    assert not old.exists() and kept.exists() and live.exists()


def test_retention_below_deltas_safe_default_must_be_allowed_explicitly():
    with pytest.raises(ValueError, match="vacuum_retention_hours=24 is below Delta's safe 168 h"):
        MaintenanceSettings(vacuum_retention_hours=24)
    assert MaintenanceSettings(vacuum_retention_hours=24, allow_short_retention=True).vacuum_retention_hours == 24
    assert maintenance.zorder_columns("silver.bars") == ("exchange", "symbol", "timeframe", "open_time")
    assert maintenance.zorder_columns("nobody.knows") == ()


@pytest.mark.spark
def test_optimize_compacts_small_files_and_vacuum_removes_the_old_ones(spark, tmp_path):
    from pyspark.sql import functions as F

    settings = settings_in(tmp_path)
    path = f"{settings.paths.lake()}/silver/bars"
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for k in range(5):  # SYNTHETIC: five appends of two bars each, one small file per append
        rows = [("synthex", "BTC/USD", "1m", t0 + timedelta(minutes=2 * k + j), float(k)) for j in range(2)]
        (spark.createDataFrame(rows, "exchange string, symbol string, timeframe string, open_time timestamp, "
                               "close double")
         .withColumn("bar_date", F.to_date("open_time")).coalesce(1)
         .write.format("delta").mode("append").partitionBy("bar_date").save(path))
    result = maintenance.optimize(spark, "silver.bars", path)
    assert result == {"table": "silver.bars", "zorder_by": ["exchange", "symbol", "timeframe", "open_time"],
                      "files_before": 5, "files_after": 1}
    data = Path(path) / "bar_date=2026-01-01"
    assert len(list(data.glob("*.parquet"))) == 6  # 5 replaced + 1 compacted: still on disk until VACUUM

    listing = spark.conf.get("spark.sql.sources.parallelPartitionDiscovery.parallelism")
    safe = settings.model_copy(update={"maintenance": MaintenanceSettings()})
    assert maintenance.vacuum(spark, "silver.bars", path, safe)["files_deleted"] == 0  # all younger than 168 h
    time.sleep(1)
    short = settings.model_copy(update={"maintenance": MaintenanceSettings(vacuum_retention_hours=0,
                                                                           allow_short_retention=True)})
    assert maintenance.vacuum(spark, "silver.bars", path, short)["files_deleted"] == 5
    assert len(list(data.glob("*.parquet"))) == 1
    assert spark.read.format("delta").load(path).count() == 10
    assert spark.conf.get("spark.databricks.delta.retentionDurationCheck.enabled") == "true"  # back to the default
    assert spark.conf.get("spark.sql.sources.parallelPartitionDiscovery.parallelism") == listing  # restored
    assert [r["operation"] for r in spark.sql(f"DESCRIBE HISTORY delta.`{path}`").collect()][:2] == [
        "VACUUM END", "VACUUM START"]
