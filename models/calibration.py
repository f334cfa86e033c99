"""Reliability-curve data: how often "p% up" predictions actually went up."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cryptolake.errors import DataValidationError
from models.evaluate import check_scores


def reliability_curve(y_true: np.ndarray, probability: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Equal-width probability bins with mean predicted probability, observed frequency and count.

    Bins are ``[k/n, (k+1)/n)`` with the last one closed at 1.0; empty bins are kept with
    count 0 and NaN means, so every report has the same rows.
    """
    if n_bins < 1:
        raise DataValidationError("n_bins", n_bins, "must be >= 1")
    y, p = check_scores(y_true, probability)
    if ((p < 0) | (p > 1)).any():
        raise DataValidationError("probability", p[(p < 0) | (p > 1)][0], "must be within [0, 1]")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.floor(p * n_bins).astype(np.int64), 0, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    sum_p = np.bincount(index, weights=p, minlength=n_bins)
    sum_y = np.bincount(index, weights=y.astype(np.float64), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.where(counts > 0, sum_p / np.maximum(counts, 1), np.nan)
        freq = np.where(counts > 0, sum_y / np.maximum(counts, 1), np.nan)
    return pd.DataFrame(
        {
            "bin": np.arange(n_bins),
            "bin_lower": edges[:-1],
            "bin_upper": edges[1:],
            "mean_predicted": mean_p,
            "observed_frequency": freq,
            "count": counts.astype(np.int64),
        }
    )


def expected_calibration_error(curve: pd.DataFrame) -> float:
    """Count-weighted mean |observed - predicted| over non-empty bins."""
    filled = curve[curve["count"] > 0]
    if filled.empty:
        raise DataValidationError("curve", "empty", "no predictions in any bin")
    gap = (filled["observed_frequency"] - filled["mean_predicted"]).abs()
    return float((gap * filled["count"]).sum() / filled["count"].sum())
