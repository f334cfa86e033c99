"""The alternative-data ablation on real January 2022 data: same folds in both arms, alt columns point in time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cryptolake.settings import get_settings
from cryptolake.tables import FEATURE_COLUMNS
from models.sequence import SequenceConfig
from research.alt_ablation import load_bars, load_documents, resample, run_ablation, training_frame


def test_resampling_keeps_ohlcv_semantics() -> None:
    t = pd.date_range("2022-01-01", periods=10, freq="1min", tz="UTC")
    minute = pd.DataFrame({"open_time": t, "open": np.arange(10.0), "high": np.arange(10.0) + 2,
                           "low": np.arange(10.0) - 1, "close": np.arange(10.0) + 0.5, "volume": 1.0})
    out = resample(minute.drop(index=[7]), "5m")
    assert list(out["open"]) == [0.0, 5.0] and list(out["close"]) == [4.5, 9.5]
    assert list(out["high"]) == [6.0, 11.0] and list(out["low"]) == [-1.0, 4.0]
    assert list(out["volume"]) == [5.0, 4.0]  # the missing minute is missing volume, not invented
    assert (out["close_time"] - out["open_time"] == pd.Timedelta(minutes=5)).all()


def test_alt_features_are_point_in_time_and_informative(shared_data: Path) -> None:
    bars, docs = load_bars(shared_data), load_documents(shared_data)
    assert len(bars) == 8928 and len(docs) > 500  # every 5-minute bucket of January 2022 has a real minute
    frame, alt = training_frame(bars, docs)
    assert {"news_count_1h", "sent_mean_24h"} <= set(alt)
    # A bar's 1-hour news count is the number of headlines available in the hour before its close.
    news = docs[docs["kind"] == "news"]
    news = news[news["coins"].map(lambda c: "BTC" in list(c))]
    row = frame[frame["news_count_1h"] > 0].iloc[0]
    window = news[(news["available_time"] > row["close_time"] - pd.Timedelta(hours=1))
                  & (news["available_time"] <= row["close_time"])]
    assert int(row["news_count_1h"]) == len(window) > 0
    assert set(frame["next_direction"]) == {0, 1}


def test_both_arms_are_scored_on_the_same_folds(shared_data: Path) -> None:
    base = SequenceConfig(window=12, hidden_size=8, max_epochs=2, patience=1, samples_per_epoch=1024, seed=3)
    result = run_ablation(shared_data, get_settings(), folds=3, base=base)
    f = result.folds
    assert set(f["arm"]) == {"market", "market+alt"} and set(f["model"]) == {"lstm", "logistic"}
    by_arm = {arm: part.sort_values(["model", "fold"])[["model", "fold", "n"]].to_numpy().tolist()
              for arm, part in f.groupby("arm")}
    assert by_arm["market"] == by_arm["market+alt"] and len(by_arm["market"]) == 6
    assert f["auc"].between(0.3, 0.7).all()  # real 5-minute BTC direction: no planted signal here
    # The arms differ only in the features: the alt arm's logistic must not equal the market arm's.
    logistic = f[f["model"] == "logistic"].pivot(index="fold", columns="arm", values="log_loss")
    assert not np.allclose(logistic["market"], logistic["market+alt"])
    assert {"news_count_1h", "sent_mean_24h"} <= set(result.alt_columns)
    assert not set(result.alt_columns) & set(FEATURE_COLUMNS)
