"""Classification metrics for up/down predictions (computed here, checked against sklearn in tests)."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import numpy as np

from cryptolake.errors import DataValidationError


@dataclass(frozen=True)
class Metrics:
    """Test-period metrics of one model. ``auc`` is NaN when only one class is present."""

    n: int
    positive_rate: float
    accuracy: float
    precision: float
    recall: float
    f1: float
    auc: float
    log_loss: float = float("nan")
    brier: float = float("nan")

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def check_scores(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate labels (0/1) and finite scores of equal length; return them as int and float arrays."""
    y = np.asarray(y_true)
    s = np.asarray(score, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise DataValidationError("y_true/score", (y.shape, s.shape), "need 1-d arrays of equal length")
    if len(y) == 0:
        raise DataValidationError("y_true", "[]", "cannot score an empty set")
    if not np.isin(y, (0, 1)).all():
        raise DataValidationError("y_true", y[~np.isin(y, (0, 1))][0], "labels must be 0 or 1")
    if not np.isfinite(s).all():
        raise DataValidationError("score", s[~np.isfinite(s)][0], "scores must be finite")
    return y.astype(np.int64), s


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve via the Mann-Whitney U statistic (ties count one half)."""
    y, s = check_scores(y_true, score)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    ranks = np.empty(len(s), dtype=np.float64)
    # Average rank within each group of tied scores.
    boundaries = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1], True])
    for lo, hi in itertools.pairwise(boundaries):
        ranks[order[lo:hi]] = (lo + hi + 1) / 2.0
    u = ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def classification_metrics(y_true: np.ndarray, probability: np.ndarray, threshold: float = 0.5) -> Metrics:
    """Accuracy, precision, recall and F1 of ``probability >= threshold``; AUC of ``probability``.

    Precision (recall) is 0 when nothing is predicted (present) positive, as sklearn's
    ``zero_division=0``. Log loss clips probabilities to [1e-7, 1 - 1e-7] (a 0/1 baseline gets a
    large but finite loss); Brier is the mean squared error of the probability.
    """
    y, p = check_scores(y_true, probability)
    pred = (p >= threshold).astype(np.int64)
    tp = int(((pred == 1) & (y == 1)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Metrics(
        n=len(y),
        positive_rate=float(y.mean()),
        accuracy=float((pred == y).mean()),
        precision=float(precision),
        recall=float(recall),
        f1=float(f1),
        auc=roc_auc(y, p),
        log_loss=log_loss(y, p),
        brier=float(np.mean((p - y) ** 2)),
    )


def log_loss(y_true: np.ndarray, probability: np.ndarray, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy of clipped probabilities."""
    y, p = check_scores(y_true, probability)
    q = np.clip(p, eps, 1 - eps)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))
