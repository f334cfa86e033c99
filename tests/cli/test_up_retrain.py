"""Retraining under `cryptolake up`: the model_retraining DAG on the streamed market's short wall-clock intervals,
each judging the candles landed in it; SYNTHETIC drift in the replay triggers a registered challenger."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
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
    from pipeline.retraining import gold_rows, judged_span, landed_span, report_path

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
    # no gold yet (the stream's first features batch is still running): not judged, nothing to retrain on
    judged, why = judged_span(Interval(wall + timedelta(seconds=10), wall + timedelta(seconds=30)), settings, 0)
    assert judged is None and gold_rows(span, settings) == 0
    assert why.startswith("not judged: 0 gold rows of the bars landed in ") and "< drift.min_live_rows 100" in why
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


# --- the living system: `up` with SYNTHETIC drift in the replay -------------------------------------------------
START_INDEX = 1000  # candles of real history the replay shows at start: the champion's training set ...
RETRAIN_S = 30  # ... and retraining intervals of 30 s: 300 replayed candles each at speed 600


def _champion(settings: Settings, candle_file: Path, history: int) -> tuple[str, datetime]:
    """SET-UP, not the rule under test: an LSTM trained with the project's own code (the gold features' pandas
    twin, SequenceModel.fit) on the real candles the replay shows as history (before its SYNTHETIC drift), promoted
    in the streamed market's registry; returns its version and training cut (the first replayed candle's open).

    The stream lands the same candles, so the drift check reloads this training set from gold as its reference."""
    from ingest.localexchange.data import load_candles
    from models.dataset import FEATURE_COLUMNS, TrainingSet
    from models.lstm import LstmConfig, LstmModel
    from pipeline.training import market_registry
    from spark_jobs.gold.features import WARMUP_BARS, features_pandas

    m = settings.market
    candles = load_candles(candle_file, m.symbols[0]).candles[:history]
    bar = pd.Timedelta(minutes=1)
    open_time = pd.to_datetime([c.open_time for c in candles], unit="ms", utc=True)
    bars = pd.DataFrame({"exchange": m.exchange, "symbol": m.symbols[0], "timeframe": m.timeframe,
                         "open_time": open_time, "close_time": open_time + bar,
                         **{k: [float(getattr(c, k)) for c in candles] for k in ("open", "high", "low", "close",
                                                                                  "volume")}})
    labels = pd.DataFrame({"ts": bars["open_time"], "next_log_return": np.log(bars["close"].shift(-1) / bars["close"]),
                           "label_available_time": bars["close_time"].shift(-1)}).dropna()
    labels["next_direction"] = (labels["next_log_return"] > 0).astype(int)
    frame = features_pandas(bars, warmup_bars=WARMUP_BARS).merge(labels, on="ts", how="inner")
    cut = (open_time[-1] + bar).to_pydatetime()
    frame = frame[frame["label_available_time"] <= pd.Timestamp(cut)].reset_index(drop=True)
    dataset = TrainingSet(frame, {}, m.symbols, open_time[0].to_pydatetime(), cut, cut, FEATURE_COLUMNS)
    model = LstmModel(LstmConfig(window=8, hidden_size=8, max_epochs=2, patience=1, samples_per_epoch=512,
                                 batch_size=128, seed=settings.seed))
    model.fit(dataset, trained_at=cut)
    entry = market_registry(settings).register(model, promote=True)
    return entry.version, cut


def _retrain_runs(af: Settings) -> list[dict[str, object]]:
    """Every model_retraining run with its tasks' states and drift_check's XCom, from the metadata DB."""
    import psycopg

    from infra import airflow_services

    url = airflow_services.db_url(af).replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(url, connect_timeout=5) as con:
        runs = con.execute("SELECT run_id, run_type, state, data_interval_start, data_interval_end FROM dag_run "
                           "WHERE dag_id = 'model_retraining' ORDER BY data_interval_start").fetchall()
        tasks = con.execute("SELECT run_id, task_id, state FROM task_instance "
                            "WHERE dag_id = 'model_retraining'").fetchall()
        xcoms = con.execute("SELECT run_id, value FROM xcom WHERE dag_id = 'model_retraining' "
                            "AND task_id = 'drift_check' AND key = 'return_value'").fetchall()
    checks = {r: v if isinstance(v, dict) else json.loads(v) for r, v in xcoms}
    return [{"run_id": r, "run_type": str(t), "state": str(s), "start": lo, "end": hi,
             "tasks": {task: str(state) for run, task, state in tasks if run == r}, "check": checks.get(r)}
            for r, t, s, lo, hi in runs]


@pytest.mark.kafka
@pytest.mark.airflow
@pytest.mark.slow
def test_synthetic_drift_in_the_replay_triggers_a_scheduled_retrain_that_registers_a_challenger(
        tmp_path: Path) -> None:
    import os
    import shutil
    import tempfile
    import time

    from infra import broker, processes, supervisor
    from pipeline.training import market_registry
    from tests.cli.test_up import AIRFLOW, _run, _session_pids

    system = load_system(DEFAULT_FILE, environ={})
    candle_file = system.replay.candles["BTC/USDT"]
    base = settings_in(tmp_path, own_state=True)
    settings = base.model_copy(update={"market": base.market.model_copy(
        update={"exchange": "localex", "timeframe": "1m", "symbols": ("BTC/USDT",)})})
    champion, cut = _champion(settings, candle_file, START_INDEX)
    af_root = Path(tempfile.mkdtemp(prefix="cryptolake-up-retrain-af-"))  # PostgreSQL (as `postgres`) reaches it
    af_root.chmod(0o755)
    af = settings.model_copy(update={"airflow": settings.airflow.model_copy(update={"home": af_root / "home"})})
    env = {**os.environ, "CRYPTOLAKE__PATHS__STATE_DIR": str(settings.paths.state_dir),
           "CRYPTOLAKE__PATHS__JARS_DIR": str(settings.paths.jars_dir),
           "CRYPTOLAKE__PATHS__LAKE_ROOT": settings.paths.lake(), "CRYPTOLAKE__LOG_LEVEL": "WARNING",
           "CRYPTOLAKE__PATHS__CHECKPOINT_ROOT": settings.paths.checkpoints(),
           "CRYPTOLAKE__PATHS__ARTIFACTS_DIR": str(settings.paths.artifacts_dir),  # the champion above
           "CRYPTOLAKE__SPARK__SHUFFLE_PARTITIONS": "2",
           "CRYPTOLAKE__TRADER__STORE_URL": f"sqlite:///{tmp_path / 'trades.db'}",
           # SYNTHETIC drift (returns and volume x3) from the first replayed candle on, 10 candles a second
           "CRYPTOLAKE_SYSTEM__REPLAY__SPEED": "600", "CRYPTOLAKE_SYSTEM__REPLAY__START_INDEX": str(START_INDEX),
           "CRYPTOLAKE_SYSTEM__REPLAY__DRIFT_AT": cut.isoformat(), "CRYPTOLAKE_SYSTEM__REPLAY__DRIFT_SCALE": "3",
           # only what retraining needs: the exchange, the connector, the stream's landing + features, Airflow
           "CRYPTOLAKE_SYSTEM__STRATEGIES": "[]", "CRYPTOLAKE_SYSTEM__ALTDATA": "[]",
           "CRYPTOLAKE_SYSTEM__STREAM__SCORE": "false", "CRYPTOLAKE_SYSTEM__STREAM__HOT": "false",
           "CRYPTOLAKE_SYSTEM__SIGNALS__ENABLED": "false", "CRYPTOLAKE_SYSTEM__MONITORING__MONITOR": "false",
           "CRYPTOLAKE_SYSTEM__MONITORING__PROMETHEUS": "false",
           "CRYPTOLAKE__AIRFLOW__HOME": str(af.airflow.home), "CRYPTOLAKE_SYSTEM__AIRFLOW__ENABLED": "true",
           "CRYPTOLAKE_SYSTEM__AIRFLOW__RETRAIN_INTERVAL_S": str(RETRAIN_S)}
    pids: list[int] = []
    sessions: list[int] = []
    descendants: list[int] = []
    try:
        up = _run(["up"], env, 420)
        assert up.returncode == 0, up.stdout + up.stderr
        state = supervisor.read_state(settings)
        assert state is not None
        rows = state["processes"]
        assert set(rows) == {"exchange", "market-localex-1m", "stream", "statsd-bridge", *AIRFLOW}, set(rows)
        pids = [state["pid"], *(r["pid"] for r in rows.values())]
        sessions = [r["pid"] for r in rows.values()]
        run = _retrained_run(af, time.monotonic() + 1200)
        descendants = _session_pids(sessions)
    finally:
        down = _run(["down"], env, 180)
        shutil.rmtree(af_root, ignore_errors=True)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "no process of ours left" in down.stdout
    assert [p for p in pids + descendants if processes.alive(p)] == []
    assert _session_pids(sessions) == []
    assert broker.broker_java_pids(settings) == [] and supervisor.supervised_pids(settings) == []

    # the scheduler's own run, on its 30-second wall-clock interval, judged drift against the champion ...
    assert run["run_type"] == "scheduled" and run["end"] - run["start"] == timedelta(seconds=RETRAIN_S), run
    check = run["check"]
    report = json.loads(Path(check["report_path"]).read_text())
    assert report == check and check["verdict"] == "drifted" and check["retrain"] is True, check
    assert check["champion"] == champion and check["reason"].startswith("drifted: ")
    span_start, span_end = (datetime.fromisoformat(check[k]) for k in ("start", "end"))
    assert span_end > cut  # the span holds replayed (drifted) candles; the first one also the history
    assert check["live_rows"] <= (span_end - span_start) / timedelta(minutes=1), check["live_rows"]  # 1m bars
    assert check["live_rows"] >= 100 and len(check["drifted_columns"]) >= 2, check["drifted_columns"]
    assert "log_ret_1" in check["drifted_columns"] or "volatility_20" in check["drifted_columns"], check
    # ... and registered a challenger trained on the streamed bars up to the judged span's end, gated
    registry = market_registry(settings)
    entry = next(e for e in registry.versions() if e.trained_at == span_end)
    assert entry.version != champion and entry.gate is not None and entry.promoted is bool(entry.gate["passed"])
    retrained = json.loads(Path(check["report_path"]).with_name(
        Path(check["report_path"]).name.replace(".json", ".retrain.json")).read_text())
    assert retrained["challenger"] == entry.version and retrained["champion_before"] == champion
    assert retrained["reason"] == check["reason"] and retrained["rows"] > START_INDEX - 400
    print(f"judged run {run['start']} -> {run['end']}: bars {span_start} -> {span_end}, {check['live_rows']} live rows "
          f"vs {check['reference_rows']} reference rows, drifted {check['drifted_columns']}; challenger "
          f"{entry.version} on {retrained['rows']} rows, promoted {entry.promoted} ({retrained['gate']})")


def _retrained_run(af: Settings, deadline: float) -> dict[str, object]:
    """The first scheduled model_retraining run whose retrain succeeded (waited for until ``deadline``)."""
    import time

    runs: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        try:
            runs = _retrain_runs(af)
        except Exception as exc:  # the metadata DB may be busy migrating or starting; tried again
            runs = [{"error": repr(exc)}]
        done = [r for r in runs if r.get("tasks", {}).get("retrain") == "success"]  # type: ignore[union-attr]
        if done:
            return done[0]
        failed = [r for r in runs if r.get("state") == "failed"]
        assert not failed, failed
        time.sleep(5)
    raise AssertionError(f"no scheduled retrain succeeded: {runs}")
