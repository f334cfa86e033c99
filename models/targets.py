"""What a model learns: next-bar direction, or the k-bar forward return net of costs.

Labels are computed from ``next_log_return`` of the point-in-time training set (gold.labels),
per series and only over contiguous bars: the k-bar forward return of the bar at t is the sum of
the next-bar returns of t .. t+k-1, known at the close of bar t+k. Where the k bars are not all
there (end of the data, a gap, another series) the label is NaN and the bar is not trained or
scored on. ``forward_return`` labels 1 when the forward return beats the round-trip cost, i.e.
when going long at t's close and selling k bars later would have made money after costs.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from cryptolake.errors import DataValidationError
from cryptolake.types import TIMEFRAME_MS
from models.windows import SERIES_COLUMNS

Target = Literal["direction", "forward_return"]
_EPOCH = pd.Timestamp(0, tz="UTC")


def forward_returns(frame: pd.DataFrame, horizon: int) -> np.ndarray:
    """Sum of ``next_log_return`` over the next ``horizon`` bars of the same contiguous series (NaN if absent).

    ``frame`` must be sorted by series then time (:func:`models.windows.sort_series`).
    """
    if horizon < 1:
        raise DataValidationError("horizon", horizon, "must be >= 1 bar")
    if "next_log_return" not in frame.columns:
        raise DataValidationError("next_log_return", "missing", "the forward-return target needs gold.labels' returns")
    r = frame["next_log_return"].to_numpy(dtype=np.float64)
    n = len(r)
    if horizon == 1:
        return r.copy()
    ts_ms = ((pd.to_datetime(frame["ts"], utc=True) - _EPOCH) // pd.Timedelta(milliseconds=1)).to_numpy(np.int64)
    sid = frame.groupby(list(SERIES_COLUMNS), sort=False).ngroup().to_numpy()
    bar_ms = frame["timeframe"].map(TIMEFRAME_MS).to_numpy(dtype=np.int64)
    out = np.full(n, np.nan)
    if n < horizon:
        return out
    csum = np.r_[0.0, np.cumsum(np.nan_to_num(r))]
    finite = np.r_[0, np.cumsum(np.isfinite(r))]
    lo = np.arange(n - horizon + 1)
    hi = lo + horizon - 1
    same = (sid[hi] == sid[lo]) & (finite[hi + 1] - finite[lo] == horizon)
    # contiguous: the time span is exactly (horizon - 1) bars (sorted rows, so no bar is missing)
    same &= (ts_ms[hi] - ts_ms[lo]) == bar_ms[lo] * (horizon - 1)
    out[lo[same]] = (csum[hi + 1] - csum[lo])[same]
    return out


def make_labels(frame: pd.DataFrame, target: Target, horizon: int, cost: float) -> np.ndarray:
    """0/1 labels as float (NaN where the target is unknown) for a series-sorted training frame."""
    if target == "direction":
        if horizon != 1:
            raise DataValidationError("horizon", horizon, "the direction target is the next bar's (horizon 1)")
        return frame["next_direction"].to_numpy(dtype=np.float64)
    if target == "forward_return":
        fwd = forward_returns(frame, horizon)
        return np.where(np.isfinite(fwd), (fwd - cost > 0).astype(np.float64), np.nan)
    raise DataValidationError("target", target, "expected 'direction' or 'forward_return'")
