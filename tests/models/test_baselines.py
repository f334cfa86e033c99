from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from cryptolake.errors import DataValidationError
from models.baselines import always_up, logistic_regression, previous_direction


def test_always_up_and_previous_direction():
    assert always_up(3).tolist() == [1.0, 1.0, 1.0]
    assert previous_direction(np.array([0.01, -0.02, 0.0])).tolist() == [1.0, 0.0, 0.0]


def test_logistic_regression_is_fit_on_train_rows_only():
    rng = np.random.default_rng(1)
    x_train = rng.normal(size=(200, 3))
    y_train = (x_train[:, 0] > 0).astype(int)
    x_test = rng.normal(size=(50, 3))
    p = logistic_regression(x_train, y_train, x_test, seed=0)
    ref = LogisticRegression(max_iter=1000, random_state=0).fit(x_train, y_train).predict_proba(x_test)[:, 1]
    assert np.allclose(p, ref)
    assert ((p >= 0.5) == (x_test[:, 0] > 0)).mean() > 0.9


def test_logistic_needs_two_classes():
    with pytest.raises(DataValidationError, match="y_train"):
        logistic_regression(np.zeros((3, 1)), np.ones(3, dtype=int), np.zeros((1, 1)))
