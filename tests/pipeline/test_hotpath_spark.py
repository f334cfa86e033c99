"""ops.bar_stages is written by two engines: the hot path (delta-rs) and the Spark stages (append_once).

Whichever creates the table, the other appends to it, and the latency report reads both chains.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from cryptolake.settings import Settings
from cryptolake.stages import stage_rows
from pipeline.latency import bar_latency
from spark_jobs.stages import append_stages
from tests.conftest import settings_in
from trader.stages import DeltaStages

pytestmark = [pytest.mark.spark]
T0 = datetime(2022, 1, 3, tzinfo=UTC)  # SYNTHETIC stamps of 10 bar keys


def _keys(exchange: str) -> pd.DataFrame:
    return pd.DataFrame({"exchange": exchange, "symbol": "BTC/USDT", "timeframe": "1m",
                         "ts": [T0 + timedelta(minutes=i) for i in range(10)]})


def _hot_rows(keys: pd.DataFrame) -> pd.DataFrame:
    close = keys["ts"] + timedelta(minutes=1)
    return pd.concat([stage_rows(keys, "ingest", close + timedelta(seconds=0.1)),
                      stage_rows(keys, "hot_features", close + timedelta(seconds=0.3)),
                      stage_rows(keys, "hot_signal", close + timedelta(seconds=0.5))], ignore_index=True)


def _spark_rows(keys: pd.DataFrame) -> pd.DataFrame:
    close = keys["ts"] + timedelta(minutes=1)
    return pd.concat([stage_rows(keys, "ingest", close + timedelta(seconds=0.1)),
                      stage_rows(keys, "gold", close + timedelta(seconds=20)),
                      stage_rows(keys, "signal", close + timedelta(seconds=25))], ignore_index=True)


@pytest.mark.parametrize("first", ["hot", "spark"])
def test_either_engine_creates_the_stage_table_and_the_other_appends(spark: object, lake_settings: Settings,
                                                                     tmp_path: Path, first: str) -> None:
    settings = settings_in(tmp_path, lake_settings)
    keys = _keys(f"stages{first}")
    if first == "spark":
        append_stages(spark, _spark_rows(keys), "test:spark", 0, settings)  # type: ignore[arg-type]
        DeltaStages(settings).append(_hot_rows(keys))
    else:
        DeltaStages(settings).append(_hot_rows(keys))
        append_stages(spark, _spark_rows(keys), "test:spark", 0, settings)  # type: ignore[arg-type]
    report = bar_latency(settings)
    assert report.bars == 10
    assert report.hot is not None and report.hot.p50 == pytest.approx(0.5)
    assert report.end_to_end is not None and report.end_to_end.p50 == pytest.approx(25.0)
    assert report.hops["ingest->hot_signal"].p99 == pytest.approx(0.4)
    assert report.hops["ingest->signal"].p99 == pytest.approx(24.9)
