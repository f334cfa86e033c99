from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from cryptolake.errors import ConfigError, DataValidationError
from cryptolake.ids import signal_id
from cryptolake.tables import FEATURE_COLUMNS
from models.evaluate import classification_metrics
from models.lstm import METADATA_FILE, WEIGHTS_FILE, LstmConfig, LstmModel
from models.scoring import SCORE_COLUMNS, score_frame
from models.splits import windows_in
from models.windows import sort_series, window_ends


@pytest.fixture(scope="module")
def fitted(real_dataset, tiny_config):
    model = LstmModel(tiny_config)
    report = model.fit(real_dataset)
    return model, report


def test_same_seed_same_data_gives_identical_metrics_and_predictions(real_dataset, tiny_config, fitted):
    model_a, report_a = fitted
    model_b = LstmModel(tiny_config)
    report_b = model_b.fit(real_dataset)
    assert {k: v.as_dict() for k, v in report_a.metrics.items()} == {
        k: v.as_dict() for k, v in report_b.metrics.items()
    }
    assert report_a.history == report_b.history
    pa, pb = model_a.predict(real_dataset.frame), model_b.predict(real_dataset.frame)
    assert np.array_equal(pa["probability"].to_numpy(), pb["probability"].to_numpy())
    assert model_a.model_version == model_b.model_version


def test_another_seed_gives_other_predictions(real_dataset, tiny_config, fitted):
    model_a, _ = fitted
    other = LstmModel(tiny_config.model_copy(update={"seed": 12}))
    other.fit(real_dataset)
    pa, po = model_a.predict(real_dataset.frame), other.predict(real_dataset.frame)
    assert not np.array_equal(pa["probability"].to_numpy(), po["probability"].to_numpy())


def test_reported_test_metrics_are_those_of_the_test_windows(real_dataset, tiny_config, fitted):
    model, report = fitted
    frame = sort_series(real_dataset.frame)
    ts = pd.to_datetime(frame["ts"], utc=True)
    ends = window_ends(frame, list(FEATURE_COLUMNS), tiny_config.window)
    test_ends = windows_in(report.fold.test, ts, ends, tiny_config.window)
    assert report.samples["test"] == len(test_ends)
    pred = model.predict(frame)
    pred_test = pred[pred["ts"].isin(ts.iloc[test_ends])]
    merged = pred_test.merge(frame, on=["exchange", "symbol", "timeframe", "ts"])
    assert len(merged) == len(test_ends)
    expected = classification_metrics(merged["next_direction"].to_numpy(), merged["probability"].to_numpy())
    assert report.metrics["lstm"].as_dict() == pytest.approx(expected.as_dict())
    y = merged["next_direction"].to_numpy()
    assert report.metrics["always_up"].accuracy == pytest.approx(y.mean())
    prev = classification_metrics(y, (merged["log_ret_1"].to_numpy() > 0).astype(float))
    assert report.metrics["previous_direction"].as_dict() == pytest.approx(prev.as_dict())
    assert set(report.metrics) == {"lstm", "always_up", "base_rate", "previous_direction", "logistic"}
    assert int(report.calibration["count"].sum()) == len(test_ends)


def test_standardiser_is_fit_on_train_rows_only(real_dataset, fitted):
    model, report = fitted
    frame = sort_series(real_dataset.frame)
    train = frame[report.fold.train.contains(frame["ts"])]
    assert model.standardiser is not None
    assert np.allclose(model.standardiser.mean, train[list(FEATURE_COLUMNS)].mean().to_numpy())
    assert not np.allclose(model.standardiser.mean, frame[list(FEATURE_COLUMNS)].mean().to_numpy())


def test_early_stopping_keeps_the_best_validation_epoch(fitted):
    _, report = fitted
    losses = [h["valid_loss"] for h in report.history]
    assert report.best_epoch == int(np.argmin(losses)) + 1
    assert report.epochs_trained == len(report.history) <= 3


def test_save_load_round_trip_gives_identical_predictions(tmp_path, real_dataset, tiny_config, fitted):
    model, report = fitted
    folder = model.save(tmp_path / "m")
    assert (folder / WEIGHTS_FILE).exists()
    meta = json.loads((folder / METADATA_FILE).read_text())
    assert meta["table_versions"] == {"gold.features": 3, "gold.labels": 2}
    assert meta["feature_columns"] == list(FEATURE_COLUMNS)
    assert meta["window"] == 8 and meta["seed"] == 11
    assert meta["config_hash"] == tiny_config.config_hash()
    assert meta["trained_at"].startswith("2017-11-01T00:00:00")  # the dataset's as-of (logical time)
    assert meta["code_version"]
    assert meta["metrics"]["lstm"]["accuracy"] == report.metrics["lstm"].accuracy
    loaded = LstmModel.load(folder)
    a, b = model.predict(real_dataset.frame), loaded.predict(real_dataset.frame)
    pd.testing.assert_frame_equal(a, b)
    assert loaded.model_version == model.model_version


def test_score_frame_matches_predict(real_dataset, fitted):
    model, _ = fitted
    scored = score_frame(model, real_dataset.frame)
    predicted = model.predict(real_dataset.frame)
    assert tuple(scored.columns) == SCORE_COLUMNS
    assert np.array_equal(scored["probability"].to_numpy(), predicted["probability"].to_numpy())
    assert (scored["direction"] == (scored["probability"] >= 0.5).astype(int)).all()
    assert (scored["model_version"] == model.model_version).all()
    assert scored["bar_time"].equals(predicted["ts"])
    first = scored.iloc[0]
    bar_ms = int(first["bar_time"].timestamp()) * 1000
    assert first["signal_id"] == signal_id(model.model_version, first["exchange"], first["symbol"], "30m", bar_ms)
    assert scored["signal_id"].is_unique


def test_score_frame_on_a_scorer_tail_equals_full_predictions(real_dataset, tiny_config, fitted):
    model, _ = fitted
    frame = sort_series(real_dataset.frame)
    tail = frame.groupby("symbol").tail(tiny_config.window)  # what a streaming scorer holds per symbol
    scored = score_frame(model, tail)
    assert len(scored) == 2
    full = model.predict(frame).set_index(["symbol", "ts"])["probability"]
    for row in scored.itertuples():
        assert row.probability == pytest.approx(full.loc[(row.symbol, row.bar_time)], abs=1e-6)


def test_explicit_trained_at_and_naive_rejected(real_dataset, tiny_config):
    model = LstmModel(tiny_config.model_copy(update={"max_epochs": 1}))
    with pytest.raises(DataValidationError, match="trained_at"):
        model.fit(real_dataset, trained_at=datetime(2020, 1, 1))


def test_config_rejects_gap_shorter_than_window():
    with pytest.raises(ValidationError, match="gap_bars"):
        LstmConfig(window=16, gap_bars=8)


def test_unfitted_model_and_incomplete_folder_are_errors(tmp_path, real_frame):
    with pytest.raises(ConfigError, match="not fitted"):
        LstmModel().predict(real_frame)
    (tmp_path / METADATA_FILE).write_text("{}")
    with pytest.raises(ConfigError, match=WEIGHTS_FILE):
        LstmModel.load(tmp_path)


def test_predict_names_missing_columns(fitted, real_frame):
    model, _ = fitted
    with pytest.raises(DataValidationError, match="rsi_14"):
        model.predict(real_frame.drop(columns=["rsi_14"]))


def test_trained_at_is_recorded(real_dataset, tiny_config):
    model = LstmModel(tiny_config.model_copy(update={"max_epochs": 1}))
    model.fit(real_dataset, trained_at=datetime(2024, 5, 1, 12, tzinfo=UTC))
    assert model.metadata is not None
    assert model.metadata.trained_at == datetime(2024, 5, 1, 12, tzinfo=UTC)
