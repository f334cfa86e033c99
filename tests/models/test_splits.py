from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from cryptolake.errors import DataValidationError
from cryptolake.tables import FEATURE_COLUMNS
from models.splits import time_split, walk_forward, windows_in
from models.windows import sort_series, window_ends

BAR = timedelta(minutes=30)


def _ts(n: int) -> pd.Series:
    return pd.Series(pd.date_range("2018-01-01", periods=n, freq="30min", tz="UTC"))


def test_time_split_segments_are_ordered_with_gaps():
    ts = _ts(1000)
    fold = time_split(ts, valid_fraction=0.2, test_fraction=0.1, gap=BAR * 32, bar=BAR)
    assert fold.train.start == ts.iloc[0]
    assert fold.test.end == ts.iloc[-1] + pd.Timedelta(BAR)
    assert fold.valid.start - fold.train.end == pd.Timedelta(BAR * 32)
    assert fold.test.start - fold.valid.end == pd.Timedelta(BAR * 32)
    usable = pd.Timedelta(BAR * (1000 - 64))
    assert fold.test.end - fold.test.start == usable * 0.1
    assert fold.valid.end - fold.valid.start == usable * 0.2


def test_no_train_window_within_the_gap_of_validation_or_test(real_frame):
    frame = sort_series(real_frame)
    ts = pd.to_datetime(frame["ts"], utc=True)
    window = 16
    ends = window_ends(frame, list(FEATURE_COLUMNS), window)
    fold = time_split(ts, valid_fraction=0.2, test_fraction=0.2, gap=BAR * window, bar=BAR)
    parts = {s.name: windows_in(s, ts, ends, window) for s in fold.segments()}
    assert all(len(p) > 50 for p in parts.values())
    last_train_bar = ts.iloc[parts["train"]].max()
    first_valid_input = ts.iloc[parts["valid"] - window + 1].min()
    last_valid_bar = ts.iloc[parts["valid"]].max()
    first_test_input = ts.iloc[parts["test"] - window + 1].min()
    # Even the label of the last train bar (next bar) lies before the first validation input.
    assert first_valid_input - last_train_bar >= pd.Timedelta(BAR * window)
    assert first_test_input - last_valid_bar >= pd.Timedelta(BAR * window)
    assert not set(parts["train"]) & set(parts["valid"]) and not set(parts["valid"]) & set(parts["test"])


def test_walk_forward_folds_move_by_step_and_keep_gaps():
    ts = _ts(2000)
    folds = list(
        walk_forward(ts, train=BAR * 500, valid=BAR * 100, test=BAR * 100, gap=BAR * 10, step=BAR * 300)
    )
    # Test segments start at bar 620 (500 train + 10 gap + 100 valid + 10 gap), then every 300 bars
    # while the start is still inside the data (bar 2120 is past the last bar, 1999).
    starts = [(f.test.start - ts.iloc[0]) / pd.Timedelta(BAR) for f in folds]
    assert starts == [620, 920, 1220, 1520, 1820]
    for f in folds:
        assert f.valid.start - f.train.end == pd.Timedelta(BAR * 10)
        assert f.test.start - f.valid.end == pd.Timedelta(BAR * 10)
        assert f.train.end - f.train.start == pd.Timedelta(BAR * 500)


def test_walk_forward_expanding_keeps_the_first_bar():
    ts = _ts(1500)
    folds = list(walk_forward(ts, train=BAR * 400, valid=BAR * 100, test=BAR * 100, gap=BAR * 8, expanding=True))
    assert len(folds) >= 2
    assert all(f.train.start == ts.iloc[0] for f in folds)
    assert folds[1].train.end - folds[0].train.end == pd.Timedelta(BAR * 100)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"valid_fraction": 0.0, "test_fraction": 0.1}, "valid_fraction"),
        ({"valid_fraction": 0.6, "test_fraction": 0.5}, "valid_fraction \\+ test_fraction"),
    ],
)
def test_time_split_rejects_bad_fractions(kwargs, field):
    with pytest.raises(DataValidationError, match=field):
        time_split(_ts(100), gap=BAR, bar=BAR, **kwargs)


def test_time_split_rejects_gap_larger_than_data():
    with pytest.raises(DataValidationError, match="gap"):
        time_split(_ts(10), valid_fraction=0.2, test_fraction=0.2, gap=BAR * 10, bar=BAR)


def test_segment_contains_is_half_open():
    ts = _ts(10)
    fold = time_split(ts, valid_fraction=0.2, test_fraction=0.2, gap=timedelta(0), bar=BAR)
    masks = np.vstack([s.contains(ts) for s in fold.segments()])
    assert (masks.sum(axis=0) == 1).all()  # every bar in exactly one segment when the gap is 0
