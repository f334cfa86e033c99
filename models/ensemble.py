"""Ensembles over the members' out-of-sample predictions of one fold: mean, stacking and selection.

Members were trained on the fold's training segment, so their validation predictions are out of
sample: stacking fits a logistic regression on the validation rows (the out-of-fold predictions)
and applies it to the test rows; selection picks the member with the lowest validation log loss.
Nothing of the test segment is used to build an ensemble.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from cryptolake.errors import DataValidationError
from models.evaluate import log_loss

ENSEMBLES: tuple[str, ...] = ("ens_mean", "ens_stack", "ens_select")


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(q / (1 - q))


def add_ensembles(fold: pd.DataFrame, members: Sequence[str], seed: int = 0) -> tuple[pd.DataFrame, str]:
    """``fold`` (one fold's valid + test rows) with ``ens_mean``, ``ens_stack``, ``ens_select`` columns.

    Returns the frame and the member chosen by selection.
    """
    if len(members) < 2:
        raise DataValidationError("members", list(members), "an ensemble needs at least two members")
    missing = [m for m in members if m not in fold.columns]
    if missing:
        raise DataValidationError("members", missing, "have no prediction column")
    out = fold.copy()
    valid = out["segment"] == "valid"
    y_valid = out.loc[valid, "label"].to_numpy()
    if len(np.unique(y_valid)) < 2:
        raise DataValidationError("valid labels", np.unique(y_valid).tolist(), "stacking needs both classes")
    p = out[list(members)].to_numpy(dtype=np.float64)
    out["ens_mean"] = p.mean(axis=1)
    stacker = LogisticRegression(max_iter=1000, random_state=seed).fit(_logit(p[valid.to_numpy()]), y_valid)
    out["ens_stack"] = stacker.predict_proba(_logit(p))[:, 1]
    losses = {m: log_loss(y_valid, out.loc[valid, m].to_numpy()) for m in members}
    chosen = min(losses, key=lambda m: (losses[m], m))
    out["ens_select"] = out[chosen]
    return out, chosen
