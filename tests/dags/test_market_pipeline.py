"""The market pipeline DAG end to end under ``dag.test()``: real candles, a SYNTHETIC fault drill, twice.

Two symbols over two months keep it to a few minutes. The drill corrupts four candles in flight
(NaN close, high < low, a duplicate, a late arrival); the run must dead-letter, flag and count
them, reconcile every layer, trade the scored test period identically on paper and in the
backtest, and a second run of the same interval must change no count, metric or fill.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from cryptolake.settings import Settings, get_settings

pytestmark = [pytest.mark.airflow, pytest.mark.spark, pytest.mark.kafka, pytest.mark.slow]

START, END = "2018-03-01T00:00:00+00:00", "2018-05-01T00:00:00+00:00"


@pytest.fixture
def drill_settings(monkeypatch: pytest.MonkeyPatch, airflow_db: Settings) -> Iterator[Settings]:
    monkeypatch.setenv("CRYPTOLAKE__MARKET__SYMBOLS", '["BTC/USD", "ETH/USD"]')
    monkeypatch.setenv("CRYPTOLAKE__MARKET__EXCHANGE", f"dagtest{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("CRYPTOLAKE__MARKET__CORRUPTION_DRILL", "true")
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def _run(dagbag, logical: datetime) -> str:
    run = dagbag.dags["market_pipeline"].test(
        logical_date=logical, run_conf={"interval_start": START, "interval_end": END, "trade": True}
    )
    return str(run.state)


def test_market_pipeline_runs_reconciles_counts_faults_and_is_idempotent(
    drill_settings, dagbag, spark, kafka_bootstrap
) -> None:
    from pipeline.mainjob import load_task_results
    from pipeline.report import build_summary

    settings = drill_settings
    assert _run(dagbag, datetime(2018, 3, 1, tzinfo=UTC)) == "success"
    first = build_summary(load_task_results(settings, START, END), settings, START, END)

    r = first["reconciliation"]
    assert set(r["checks"].values()) == {"ok"}
    assert r["source_candles"] == 2927 + 2925  # real BTC and ETH candles of March-April 2018 (a few are missing)
    assert r["producer_dead_letters"] == 1  # the NaN close
    assert r["duplicates"] == 1  # the copy sent twice
    assert r["unique_bronze"] == r["source_candles"] - 1  # the late candle still landed
    q = first["quality"]
    assert q["corruption_drill"] is True
    assert q["flagged"]["high_below_low"] == 1
    assert q["gaps"] >= 1  # the dead-lettered candle leaves a flagged hole, not an invented bar
    assert first["trading_check"]["identical"] is True
    assert first["trading_check"]["paper_fills"] == first["trading_check"]["backtest_fills"]
    assert first["signals"]["scored"] > 0

    assert _run(dagbag, datetime(2018, 3, 2, tzinfo=UTC)) == "success"
    second = build_summary(load_task_results(settings, START, END), settings, START, END)
    assert second["reconciliation"] == first["reconciliation"]
    assert second["model"]["metrics"] == first["model"]["metrics"]
    assert second["trading"] == first["trading"]
    assert second["trading_check"]["paper_fills"] == first["trading_check"]["paper_fills"]
