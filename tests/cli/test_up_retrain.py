"""Retraining under `cryptolake up`: the model_retraining DAG on the streamed market's short wall-clock intervals,
each judging the candles landed in it; SYNTHETIC drift in the replay triggers a registered challenger."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from cryptolake.settings import Settings
from cryptolake.system import DEFAULT_FILE, load_system
from tests.conftest import settings_in


def test_the_airflow_processes_get_the_streamed_market_and_its_retraining_settings(tmp_path: Path,
                                                                                 monkeypatch) -> None:
    from cli.up import airflow_settings, airflow_specs, retrain_env

    env = {"CRYPTOLAKE_SYSTEM__AIRFLOW__RETRAIN_INTERVAL_S": "30", "CRYPTOLAKE_SYSTEM__REPLAY__SPEED": "600"}
    system = load_system(DEFAULT_FILE, environ=env)
    base = Settings()
    settings = airflow_settings(system, base.model_copy(
        update={"airflow": base.airflow.model_copy(update={"home": tmp_path / "af"})}))
    assert (settings.airflow.retrain_interval_s, settings.airflow.retrain_clock) == (30, "landed")
    specs = {s.name: s for s in airflow_specs(system, settings, now=1_000_000_007.5)}
    for name in ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor"):
        e = specs[name].env
        assert (e["CRYPTOLAKE__MARKET__EXCHANGE"], e["CRYPTOLAKE__MARKET__TIMEFRAME"]) == ("localex", "1m")
        assert json.loads(e["CRYPTOLAKE__MARKET__SYMBOLS"]) == ["BTC/USDT"]
        assert e["CRYPTOLAKE__AIRFLOW__RETRAIN_INTERVAL_S"] == "30"
        assert e["CRYPTOLAKE__AIRFLOW__RETRAIN_CLOCK"] == "landed"
        assert e["CRYPTOLAKE__AIRFLOW__RETRAIN_START"] == "2001-09-09T01:46:30+00:00"  # on the 30 s grid
        assert e["CRYPTOLAKE__PIPELINE__TRAIN_LOOKBACK_DAYS"] == "7"
        assert e["CRYPTOLAKE__DRIFT__MIN_LIVE_ROWS"] == "100"  # 300 bars a run: the 100-bar floor
    # the default config: 300 s at speed 60 = 300 bars a run; a short run at speed 1 (5 bars) judges from 2 rows
    default = load_system(DEFAULT_FILE, environ={})
    assert default.airflow.retrain_interval_s == 300
    assert retrain_env(default, datetime(2026, 1, 1, tzinfo=UTC))["CRYPTOLAKE__DRIFT__MIN_LIVE_ROWS"] == "100"
    slow = load_system(DEFAULT_FILE, environ={"CRYPTOLAKE_SYSTEM__REPLAY__SPEED": "1"})
    assert retrain_env(slow, datetime(2026, 1, 1, tzinfo=UTC))["CRYPTOLAKE__DRIFT__MIN_LIVE_ROWS"] == "2"
    # the env is what the tasks' settings read: the streamed market's registry, as the scorer's
    from cli.up import stream_registry
    from pipeline.training import market_registry

    for key, value in specs["airflow-scheduler"].env.items():
        if key.startswith("CRYPTOLAKE__"):
            monkeypatch.setenv(key, value)
    task_settings = Settings()
    assert market_registry(task_settings).root.name == stream_registry(system, base).root.name == "localex-1m"
    assert task_settings.market.symbols == ("BTC/USDT",) and task_settings.drift.min_live_rows == 100
    assert task_settings.airflow.retrain_start == datetime(2001, 9, 9, 1, 46, 30, tzinfo=UTC)


def _bronze(settings: Settings, rows: list[tuple[str, str, int, datetime]]) -> None:
    """bronze.market_ohlcv rows (key, timeframe, open ms, landed_time) of 1m candles, written with delta-rs."""
    from cryptolake import topics
    from cryptolake.tables import bronze_spec
    from tests.models.lake_fixture import write_table

    frame = pd.DataFrame([{
        "key": key, "payload": json.dumps({"timeframe": tf, "event_time": ms}), "topic": topics.MARKET_OHLCV,
        "partition": 0, "offset": i, "kafka_time": landed, "event_time": pd.Timestamp(ms, unit="ms", tz="UTC"),
        "available_time": pd.Timestamp(ms + 60_000, unit="ms", tz="UTC"), "ingest_time": landed,
        "landed_time": landed, "event_date": pd.Timestamp(ms, unit="ms", tz="UTC").date(),
    } for i, (key, tf, ms, landed) in enumerate(rows)])
    write_table(bronze_spec(topics.MARKET_OHLCV), frame, settings)


def test_the_landed_span_is_the_bar_time_of_the_markets_candles_landed_in_the_interval(tmp_path: Path) -> None:
    from pipeline.interval import Interval
    from pipeline.retraining import landed_span, report_path

    base = settings_in(tmp_path)
    settings = base.model_copy(update={
        "market": base.market.model_copy(update={"exchange": "localex", "timeframe": "1m", "symbols": ("BTC/USDT",)}),
        "airflow": base.airflow.model_copy(update={"retrain_clock": "landed"})})
    wall = datetime(2026, 12, 7, 23, 0, tzinfo=UTC)
    bar0 = int(datetime(2022, 1, 1, 5, 0, tzinfo=UTC).timestamp() * 1000)
    rows = [("localex:BTC/USDT", "1m", bar0 + i * 60_000, wall + timedelta(seconds=i)) for i in range(40)]
    rows += [("localex:ETH/USDT", "1m", bar0 - 600_000, wall + timedelta(seconds=5)),  # another symbol
             ("other:BTC/USDT", "1m", bar0 - 600_000, wall + timedelta(seconds=5)),  # another venue
             ("localex:BTC/USDT", "5m", bar0 - 600_000, wall + timedelta(seconds=5))]  # another timeframe
    _bronze(settings, rows)
    span = landed_span(Interval(wall + timedelta(seconds=10), wall + timedelta(seconds=30)), settings, settle_s=0)
    assert span == Interval(datetime(2022, 1, 1, 5, 10, tzinfo=UTC), datetime(2022, 1, 1, 5, 30, tzinfo=UTC))
    assert landed_span(Interval(wall + timedelta(minutes=5), wall + timedelta(minutes=6)), settings, 0) is None
    assert report_path(span, settings).name == "202201010510-202201010530.json"  # to the minute: bar spans
    assert report_path(span, base).name == "2022010105-2022010105.json"  # the bar clock keeps the interval's tag


def test_the_retraining_dag_schedule_is_the_market_cron_unless_up_sets_an_interval() -> None:
    pytest.importorskip("airflow")
    from airflow.timetables.interval import CronDataIntervalTimetable, DeltaDataIntervalTimetable

    from dags.model_retraining import schedule

    af = Settings().airflow
    timetable, start, end = schedule(af)
    assert isinstance(timetable, CronDataIntervalTimetable) and timetable.summary == "0 0 * * *"
    assert (start, end) == (af.market_start, af.market_end)
    up_start = datetime(2026, 12, 7, 23, 0, 30, tzinfo=UTC)
    timetable, start, end = schedule(af.model_copy(update={"retrain_interval_s": 30, "retrain_start": up_start}))
    assert isinstance(timetable, DeltaDataIntervalTimetable) and timetable._delta == timedelta(seconds=30)
    assert (start, end) == (up_start, None)
