"""Purged walk-forward folds: no training row within horizon + embargo bars of a test row."""

from __future__ import annotations

import itertools
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from cryptolake.errors import DataValidationError
from models.walkforward import purge_bars, segment_rows, walk_forward_tasks
from models.windows import sort_series, window_ends
from tests.models.synthetic import FEATURES, synthetic_frame

BAR = timedelta(minutes=30)


@pytest.mark.parametrize(("window", "horizon", "embargo", "expanding"),
                         [(4, 6, 3, True), (8, 1, 0, True), (4, 12, 5, False)])
def test_no_training_row_lies_within_horizon_plus_embargo_of_a_test_row(window, horizon, embargo, expanding):
    frame = sort_series(synthetic_frame(n=2000, seed=1, symbols=("A/USD", "B/USD")))
    ts = pd.to_datetime(frame["ts"], utc=True)
    ends = window_ends(frame, list(FEATURES), window)
    gap = purge_bars(window, horizon, embargo)
    tasks = walk_forward_tasks(ts, n_folds=4, bar=BAR, gap_bars=gap, expanding=expanding)
    assert [t.index for t in tasks] == [0, 1, 2, 3]
    for task in tasks:
        rows = segment_rows(task.fold, ts, ends, window, horizon, BAR)
        train_ts, valid_ts, test_ts = (ts.iloc[rows[n]] for n in ("train", "valid", "test"))
        assert len(train_ts) and len(valid_ts) and len(test_ts)
        # the latest training row's label (horizon bars on) plus the embargo still ends before any test bar
        assert test_ts.min() - train_ts.max() > pd.Timedelta(BAR * (horizon + embargo))
        assert valid_ts.min() - train_ts.max() > pd.Timedelta(BAR * (horizon + embargo))
        assert test_ts.min() - valid_ts.max() > pd.Timedelta(BAR * (horizon + embargo))
        # the label of every kept training row is known before the training segment ends
        assert (train_ts + pd.Timedelta(BAR * horizon) <= task.fold.train.end).all()
    tests = [t.fold.test for t in tasks]
    assert all(a.end <= b.start for a, b in itertools.pairwise(tests))  # disjoint, in order
    assert tests[-1].end == ts.max() + pd.Timedelta(BAR)
    starts = {t.fold.train.start for t in tasks}
    assert (len(starts) == 1) == expanding  # expanding: every fold trains from the first bar


def test_a_fit_on_a_fold_trains_only_on_purged_rows():
    from models.sequence import SequenceConfig, SequenceModel
    from tests.models.synthetic import synthetic_dataset

    ds = synthetic_dataset(synthetic_frame(n=1200, seed=2))
    cfg = SequenceConfig(feature_columns=FEATURES, window=4, hidden_size=4, max_epochs=1, samples_per_epoch=64,
                         batch_size=32, target="forward_return", horizon=5, embargo_bars=3)
    ts = pd.to_datetime(ds.frame["ts"], utc=True)
    task = walk_forward_tasks(ts, n_folds=2, bar=BAR, gap_bars=purge_bars(4, 5, 3))[1]
    report = SequenceModel(cfg).fit(ds, fold=task.fold)
    test = report.predictions[report.predictions["segment"] == "test"]
    assert test["ts"].min() >= task.fold.test.start
    with pytest.raises(DataValidationError, match=r"fold\.gap"):
        SequenceModel(cfg.model_copy(update={"horizon": 12})).fit(ds, fold=task.fold)


def test_folds_that_do_not_fit_are_refused_by_name():
    ts = pd.Series(pd.date_range("2020-01-01", periods=50, freq="30min", tz="UTC"))
    with pytest.raises(DataValidationError, match="walk_forward"):
        walk_forward_tasks(ts, n_folds=5, bar=BAR, gap_bars=20)
    with pytest.raises(DataValidationError, match="walk_forward"):
        walk_forward_tasks(ts, n_folds=0, bar=BAR, gap_bars=2)
    assert purge_bars(32, 1, 4) == 32 and purge_bars(4, 10, 4) == 14
    assert np.isfinite(purge_bars(2, 1, 0))
