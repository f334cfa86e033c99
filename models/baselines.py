"""Naive baselines every model is reported against, scored on the same test windows.

- ``always_up``: probability 1 for every bar (the base rate in accuracy terms).
- ``previous_direction``: up if the bar that just closed went up (``log_ret_1 > 0``).
- ``logistic``: sklearn logistic regression on the same standardised features of the
  window's last bar, fit on the training rows only.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from cryptolake.errors import DataValidationError


def always_up(n: int) -> np.ndarray:
    """Probability 1.0 of an up move for ``n`` bars."""
    return np.ones(n, dtype=np.float64)


def previous_direction(last_log_return: np.ndarray) -> np.ndarray:
    """1.0 where the latest bar's log return is positive, else 0.0."""
    r = np.asarray(last_log_return, dtype=np.float64)
    if not np.isfinite(r).all():
        raise DataValidationError("log_ret_1", r[~np.isfinite(r)][0], "must be finite")
    return (r > 0).astype(np.float64)


def logistic_regression(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, seed: int = 0
) -> np.ndarray:
    """Fit a logistic regression on the training rows and return test up-probabilities."""
    if len(np.unique(y_train)) < 2:
        raise DataValidationError("y_train", np.unique(y_train).tolist(), "needs both classes to fit")
    model = LogisticRegression(max_iter=1000, random_state=seed)
    model.fit(x_train, y_train)
    return np.asarray(model.predict_proba(x_test)[:, 1], dtype=np.float64)
