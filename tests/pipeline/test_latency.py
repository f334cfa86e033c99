"""pipeline.latency: per-bar p50/p99 by stage from ops.bar_stages rows (pure; no JVM)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from pipeline.latency import bar_latency, latency_report
from tests.conftest import settings_in

T0 = datetime(2024, 1, 1, tzinfo=UTC)  # SYNTHETIC stamps


def _rows(n: int, offsets: dict[str, float]) -> pd.DataFrame:
    out = []
    for i in range(n):
        ts = T0 + timedelta(minutes=i)
        close = ts + timedelta(minutes=1)
        for stage, sec in offsets.items():
            out.append({"exchange": "x", "symbol": "BTC/USD", "timeframe": "1m", "ts": ts, "stage": stage,
                        "stage_time": close + timedelta(seconds=sec + (i % 10) * 0.1)})
    return pd.DataFrame(out)


def test_stages_are_measured_from_the_bar_close_and_between_each_other() -> None:
    report = latency_report(_rows(100, {"ingest": 0.2, "landed": 1.0, "gold": 3.0, "signal": 3.5}))
    assert report.bars == 100
    assert report.from_close["ingest"].p50 == pytest.approx(0.65, abs=0.06)
    assert report.from_close["signal"].p99 == pytest.approx(4.4, abs=0.02)
    assert report.hops["landed->gold"].p50 == pytest.approx(2.0)
    assert report.hops["ingest->signal"].max == pytest.approx(3.3)
    assert report.end_to_end == report.from_close["signal"]


def test_first_stamp_wins_and_since_filters_on_the_close() -> None:
    rows = _rows(10, {"ingest": 0.0, "signal": 2.0})
    replay = rows[rows["stage"] == "signal"].assign(stage_time=lambda f: f["stage_time"] + timedelta(seconds=60))
    report = latency_report(pd.concat([rows, replay]), since=T0 + timedelta(minutes=6))
    assert report.bars == 5  # bars closing at minutes 6..10
    assert report.from_close["signal"].max == pytest.approx(2.9)  # the replay's later stamp is ignored


def test_bars_without_a_later_stage_count_only_where_present() -> None:
    rows = pd.concat([_rows(4, {"ingest": 0.0, "gold": 1.0}), _rows(2, {"signal": 2.0})])
    report = latency_report(rows)
    assert report.from_close["gold"].bars == 4 and report.from_close["signal"].bars == 2
    assert report.hops["gold->signal"].bars == 2


def test_no_table_is_an_empty_report(tmp_path) -> None:
    report = bar_latency(settings_in(tmp_path))
    assert report.bars == 0 and report.end_to_end is None and report.from_close == {}
