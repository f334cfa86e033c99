"""Naive baselines every model is reported against, scored on the same test windows.

- ``always_up``: probability 1 for every bar (the base rate in accuracy terms).
- ``base_rate``: the training rows' up rate as a constant probability (the log-loss/Brier baseline).
- ``previous_direction``: up if the bar that just closed went up (``log_ret_1 > 0``).
- ``logistic``: sklearn logistic regression on the same standardised features of the
  window's last bar, fit on the training rows only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from cryptolake.errors import DataValidationError
from models.dataset import KEY_COLUMNS
from models.evaluate import Metrics, classification_metrics


def always_up(n: int) -> np.ndarray:
    """Probability 1.0 of an up move for ``n`` bars."""
    return np.ones(n, dtype=np.float64)


def base_rate(y_train: np.ndarray, n: int) -> np.ndarray:
    """The training up rate as the probability of every one of ``n`` bars."""
    y = np.asarray(y_train, dtype=np.float64)
    if len(y) == 0:
        raise DataValidationError("y_train", "[]", "needs training labels for a base rate")
    return np.full(n, float(y.mean()), dtype=np.float64)


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


NAIVE_BASELINES: tuple[str, ...] = ("always_up", "base_rate", "previous_direction", "logistic")


def naive_scores(
    x_last: np.ndarray, last_log_return: np.ndarray | None, labels: np.ndarray,
    train: np.ndarray, rows: np.ndarray, seed: int,
) -> dict[str, np.ndarray]:
    """Every naive baseline's probabilities for ``rows``, fit on ``train`` rows only.

    ``x_last`` holds each bar's standardised features (the window's last bar), ``labels`` the 0/1
    targets; ``previous_direction`` needs ``log_ret_1`` and is left out without it.
    """
    y_train = labels[train].astype(np.int64)
    out = {
        "always_up": always_up(len(rows)),
        "base_rate": base_rate(y_train, len(rows)),
        "logistic": logistic_regression(x_last[train], y_train, x_last[rows], seed),
    }
    if last_log_return is not None:
        out["previous_direction"] = previous_direction(last_log_return[rows])
    return out


def segment_predictions(frame: pd.DataFrame, labels: np.ndarray, split: dict[str, np.ndarray], x_all: np.ndarray,
                        scored: dict[str, np.ndarray], column: str, threshold: float, seed: int,
                        ) -> tuple[pd.DataFrame, dict[str, Metrics]]:
    """A model's valid and test scores beside every naive baseline's, on the same rows, and the test metrics.

    ``frame`` is the sorted training frame, ``split`` its row indices per segment, ``x_all`` the standardised
    features the logistic baseline fits on, ``scored`` the model's probabilities per segment (in ``column``).
    """
    last_ret = frame["log_ret_1"].to_numpy() if "log_ret_1" in frame.columns else None
    next_ret = (frame["next_log_return"].to_numpy(dtype=np.float64) if "next_log_return" in frame.columns
                else np.full(len(frame), np.nan))
    parts = []
    for name in ("valid", "test"):
        rows = split[name]
        part = frame.loc[rows, list(KEY_COLUMNS)].reset_index(drop=True)
        part["segment"] = name
        part["label"] = labels[rows].astype(np.int64)
        part["next_log_return"] = next_ret[rows]
        part[column] = scored[name]
        for base, p in naive_scores(x_all, last_ret, labels, split["train"], rows, seed).items():
            part[base] = p
        parts.append(part)
    predictions = pd.concat(parts, ignore_index=True)
    test = predictions[predictions["segment"] == "test"]
    score_columns = [c for c in predictions.columns if c not in (*KEY_COLUMNS, "segment", "label", "next_log_return")]
    metrics = {c: classification_metrics(test["label"].to_numpy(), test[c].to_numpy(), threshold)
               for c in score_columns}
    return predictions, metrics
