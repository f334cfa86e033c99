"""Short holes are forward-filled and flagged; long holes are not; a filled bar never ends a window."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cryptolake.errors import DataValidationError
from models.impute import IMPUTED, IMPUTED_CELLS, impute_short_gaps
from models.sequence import SequenceConfig, SequenceModel
from tests.models.synthetic import FEATURES, synthetic_dataset, synthetic_frame


def _holed(frame: pd.DataFrame, drop: list[int]) -> pd.DataFrame:
    return frame.drop(index=drop).reset_index(drop=True)


def test_short_holes_are_filled_from_the_last_real_bar_and_flagged():
    frame = synthetic_frame(n=40, seed=1)  # SYNTHETIC
    holed = _holed(frame, [10, 11, 20, 21, 22, 23, 24])  # a 2-bar hole and a 5-bar hole
    holed.loc[30, "f1"] = np.nan  # a missing value in a real row (index 30 after the drops = bar 37)
    out = impute_short_gaps(holed, FEATURES, max_gap=3)
    f = out.frame
    assert out.inserted_rows == 2 and len(f) == len(holed) + 2
    inserted = f[~f["ts"].isin(holed["ts"])]
    assert list(inserted["ts"]) == list(frame.loc[[10, 11], "ts"])
    # Features carried from bar 9, the last real bar; prices and labels stay missing.
    for col in FEATURES:
        assert (inserted[col] == frame.loc[9, col]).all()
    assert inserted["next_direction"].isna().all() and inserted["next_log_return"].isna().all()
    assert inserted[IMPUTED].all() and (inserted[IMPUTED_CELLS] == len(FEATURES)).all()
    # The 5-bar hole is longer than max_gap: nothing is inserted there.
    assert not f["ts"].isin(frame.loc[20:24, "ts"]).any()
    # The missing cell is filled from the bar before it, flagged as one cell.
    row = f[f["ts"] == frame.loc[37, "ts"]].iloc[0]
    assert row["f1"] == frame.loc[36, "f1"] and row[IMPUTED_CELLS] == 1 and row[IMPUTED]
    assert out.filled_cells == 2 * len(FEATURES) + 1
    assert int(f[IMPUTED].sum()) == 3
    # The input frame (silver/gold's copy) is never modified.
    assert np.isnan(holed.loc[30, "f1"]) and len(holed) == 33


def test_zero_max_gap_fills_nothing_and_bad_values_are_refused():
    frame = _holed(synthetic_frame(n=20, seed=2), [5])  # SYNTHETIC
    out = impute_short_gaps(frame, FEATURES, max_gap=0)
    assert out.inserted_rows == 0 and out.filled_cells == 0 and not out.frame[IMPUTED].any()
    with pytest.raises(DataValidationError, match="impute_max_gap"):
        impute_short_gaps(frame, FEATURES, max_gap=-1)
    with pytest.raises(DataValidationError, match="timeframe"):
        impute_short_gaps(frame.assign(timeframe="7m"), FEATURES, max_gap=2)


def _config(gap: int) -> SequenceConfig:
    return SequenceConfig(net="tcn", feature_columns=FEATURES, window=6, hidden_size=8, learning_rate=1e-2,
                          batch_size=128, max_epochs=2, patience=1, samples_per_epoch=0, seed=3,
                          impute_max_gap=gap)


def test_imputation_recovers_windows_but_never_scores_or_trains_on_a_filled_bar():
    frame = synthetic_frame(n=1200, seed=4)  # SYNTHETIC
    holes = [100, 101, 400, 700, 701, 702]
    holed = _holed(frame, holes)
    dataset = synthetic_dataset(holed)
    plain, filled = SequenceModel(_config(0)), SequenceModel(_config(3))
    plain.fit(dataset)
    filled.fit(dataset)
    assert filled.describe()["imputation"] == {"inserted_rows": 6, "filled_cells": 18, "imputed_rows": 6}
    a, b = plain.predict(holed), filled.predict(holed)
    # Without imputation each hole costs window - 1 = 5 ends after it (besides the missing bar itself).
    assert len(a) == len(holed) - 5 - 3 * 5
    assert len(b) == len(holed) - 5
    assert not b["ts"].isin(frame.loc[holes, "ts"]).any()
    assert set(b["ts"]) <= set(holed["ts"])
    # Windows that reach back over a filled bar say so; the others carry 0.
    after = b[b["ts"] == frame.loc[102, "ts"]].iloc[0]
    assert after["imputed_bars"] == 2
    assert (b["imputed_bars"] > 0).sum() == 3 * 5
    assert int(b["imputed_bars"].sum()) == 2 * 5 + 1 * 5 + 3 * 5 - (1 + 3)  # holes of 2, 1 and 3 in 6-bar windows
