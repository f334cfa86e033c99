"""Feature selection on a fold's training rows only: mutual information, L1, gradient boosting, RFE.

Each method ranks the features of the window's last bar against the training labels and keeps
the top ``k``; the chosen set (in the original column order) and every feature's score are
stored with the model (``ModelMetadata.feature_selection``). Validation and test rows are never
seen, so selection cannot leak the out-of-sample period.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from cryptolake.errors import DataValidationError

Method = Literal["mutual_info", "l1", "gbm", "rfe"]
METHODS: tuple[str, ...] = ("mutual_info", "l1", "gbm", "rfe")


@dataclass(frozen=True)
class Selection:
    """What a selection kept and why."""

    method: str
    k: int
    chosen: tuple[str, ...]
    scores: dict[str, float]
    train_rows: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _scores(x: np.ndarray, y: np.ndarray, method: str, seed: int) -> np.ndarray:
    if method == "mutual_info":
        from sklearn.feature_selection import mutual_info_classif

        return np.asarray(mutual_info_classif(x, y, random_state=seed))
    if method == "l1":
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(l1_ratio=1.0, solver="saga", C=0.05, max_iter=2000, random_state=seed).fit(x, y)
        return np.abs(model.coef_[0])
    if method == "gbm":
        import lightgbm as lgb

        model = lgb.LGBMClassifier(n_estimators=100, learning_rate=0.05, num_leaves=15, random_state=seed,
                                   n_jobs=1, deterministic=True, force_row_wise=True, verbose=-1).fit(x, y)
        return np.asarray(model.booster_.feature_importance(importance_type="gain"), dtype=np.float64)
    if method == "rfe":
        from sklearn.feature_selection import RFE
        from sklearn.linear_model import LogisticRegression

        rfe = RFE(LogisticRegression(max_iter=1000, random_state=seed), n_features_to_select=1).fit(x, y)
        return 1.0 / np.asarray(rfe.ranking_, dtype=np.float64)  # rank 1 = best
    raise DataValidationError("select", method, f"expected one of {METHODS}")


def select_features(x_train: np.ndarray, y_train: np.ndarray, names: Sequence[str], method: str, k: int,
                    seed: int = 0) -> Selection:
    """Keep the ``k`` best of ``names`` by ``method`` on training rows (standardised features, 0/1 labels)."""
    if not 1 <= k <= len(names):
        raise DataValidationError("select_k", k, f"must be between 1 and {len(names)}")
    if x_train.shape != (len(y_train), len(names)):
        raise DataValidationError("x_train", x_train.shape, f"expected ({len(y_train)}, {len(names)})")
    finite = np.isfinite(x_train).all(axis=1) & np.isfinite(y_train)
    x, y = x_train[finite], y_train[finite].astype(np.int64)
    if len(np.unique(y)) < 2:
        raise DataValidationError("y_train", np.unique(y).tolist(), "selection needs both classes")
    scores = _scores(x, y, method, seed)
    order = sorted(range(len(names)), key=lambda i: (-scores[i], i))[:k]
    chosen = tuple(names[i] for i in sorted(order))
    named = {n: float(s) for n, s in zip(names, scores, strict=True)}
    return Selection(method=method, k=k, chosen=chosen, scores=named, train_rows=len(y))
