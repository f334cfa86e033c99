"""pipeline.latency: per-bar p50/p99 by stage from ops.bar_stages rows (pure; no JVM)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
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


def test_the_hot_chain_is_reported_beside_the_spark_chain_never_across_them() -> None:
    rows = _rows(50, {"ingest": 0.2, "landed": 1.0, "gold": 3.0, "signal": 3.5, "hot_features": 0.3,
                      "hot_signal": 0.4})
    report = latency_report(rows)
    assert report.hot == report.from_close["hot_signal"]
    assert report.hot is not None and report.hot.p50 == pytest.approx(0.85, abs=0.06)
    assert report.hops["ingest->hot_features"].p50 == pytest.approx(0.1)
    assert report.hops["hot_features->hot_signal"].max == pytest.approx(0.1)
    assert report.hops["ingest->hot_signal"].p99 == pytest.approx(0.2)
    assert report.hops["gold->signal"].p50 == pytest.approx(0.5)
    assert set(report.hops) == {"ingest->landed", "landed->gold", "gold->signal", "ingest->hot_features",
                                "hot_features->hot_signal", "ingest->signal", "ingest->hot_signal"}  # none across
    assert report.end_to_end == report.from_close["signal"]  # the Spark chain's end to end is unchanged


def test_the_hot_path_alone_reports_its_chain_and_no_spark_end_to_end() -> None:
    report = latency_report(_rows(20, {"ingest": 0.0, "hot_features": 0.05, "hot_signal": 0.1}))
    assert report.end_to_end is None and report.hot is not None and report.hot.bars == 20
    assert set(report.hops) == {"ingest->hot_features", "hot_features->hot_signal", "ingest->hot_signal"}


def test_close_to_order_is_the_traders_end_to_end_and_ends_the_chain_whose_signal_came_first() -> None:
    spark = _rows(10, {"ingest": 0.2, "landed": 1.0, "gold": 3.0, "signal": 3.5, "order": 3.6})
    hot = _rows(20, {"ingest": 0.2, "hot_features": 0.3, "hot_signal": 0.4, "order": 0.45})
    hot = hot[hot["ts"] >= T0 + timedelta(minutes=10)]  # the next ten bars went through the hot path
    report = latency_report(pd.concat([spark, hot], ignore_index=True))
    assert report.order == report.from_close["order"] and report.order is not None
    assert report.order.bars == 20
    closes = [3.6 + (i % 10) * 0.1 for i in range(10)] + [0.45 + (i % 10) * 0.1 for i in range(10, 20)]
    assert report.order.p50 == pytest.approx(float(np.percentile(closes, 50)))
    assert report.order.p99 == pytest.approx(float(np.percentile(closes, 99)))
    assert report.hops["signal->order"].bars == 10 and report.hops["signal->order"].p50 == pytest.approx(0.1)
    assert report.hops["hot_signal->order"].bars == 10
    assert report.hops["hot_signal->order"].max == pytest.approx(0.05)
    assert report.hops["ingest->order"].bars == 20
    assert report.end_to_end == report.from_close["signal"] and report.hot == report.from_close["hot_signal"]


def test_a_bar_signalled_by_both_routes_counts_its_order_after_the_first_signal_only() -> None:
    rows = _rows(5, {"hot_signal": 0.4, "signal": 3.5, "order": 0.5})
    report = latency_report(rows)
    assert report.hops["hot_signal->order"].bars == 5 and report.hops["hot_signal->order"].p50 == pytest.approx(0.1)
    assert "signal->order" not in report.hops  # it would be negative: the order answered the hot signal


def test_an_order_of_the_first_signal_stamp_wins_on_a_replayed_run() -> None:
    rows = _rows(4, {"signal": 1.0, "order": 1.2})
    rerun = rows[rows["stage"] == "order"].assign(stage_time=lambda f: f["stage_time"] + timedelta(hours=1))
    report = latency_report(pd.concat([rows, rerun]))
    assert report.order is not None and report.order.max == pytest.approx(1.5)
