"""Optuna search: the study is stored in SQLite under the state dir, and a seed fixes the best parameters."""

from __future__ import annotations

import optuna
import pytest

from cryptolake.settings import PathSettings, Settings
from models.search import _medians, run_search
from models.sequence import SequenceConfig
from tests.models.synthetic import FEATURES, synthetic_dataset, synthetic_frame


def test_the_same_seed_gives_the_same_best_params_and_the_study_is_stored(tmp_path):
    settings = Settings(paths=PathSettings(state_dir=tmp_path))
    ds = synthetic_dataset(synthetic_frame(n=900, seed=9))
    base = SequenceConfig(net="gru", feature_columns=FEATURES, window=4, max_epochs=1, patience=1,
                          samples_per_epoch=128, batch_size=64, seed=5)
    a = run_search(ds, base, settings, trials=5, n_folds=2, workers=0, study_name="a")
    b = run_search(ds, base, settings, trials=5, n_folds=2, workers=0, study_name="b")
    assert a.best_params == b.best_params and a.best_value == b.best_value
    assert (tmp_path / "optuna" / "studies.db").exists()
    study = optuna.load_study(study_name="a", storage=a.storage)
    assert len(study.trials) == 5 and study.best_value == a.best_value
    assert 0 < a.best_value < 0.7  # validation log loss, below chance on the planted signal


def test_median_pruning_uses_earlier_trials_only():
    history = [[0.6, 0.62], [0.7, 0.7], [0.65, 0.6], [0.69, 0.71]]
    medians = _medians(history, n_folds=2, warmup=4)
    assert medians[0] == pytest.approx(0.67) and medians[1] is None  # the last fold is never pruned
    assert _medians(history[:3], n_folds=2, warmup=4) == [None, None]
