"""Fixed-length windows of feature rows per series, and a standardiser fit on training rows only.

A window is identified by the row index of its last bar (its "end"). A window never crosses a
series boundary (exchange, symbol, timeframe), a gap in bar times, or a row with a missing
feature: those rows start a new contiguous run and a window needs ``length`` rows of one run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cryptolake.errors import DataValidationError
from cryptolake.types import TIMEFRAME_MS

SERIES_COLUMNS: tuple[str, ...] = ("exchange", "symbol", "timeframe")
_EPOCH = pd.Timestamp(0, tz="UTC")


def sort_series(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows ordered by series then time, index reset (the order every window index refers to)."""
    return frame.sort_values([*SERIES_COLUMNS, "ts"], kind="mergesort").reset_index(drop=True)


def run_ids(frame: pd.DataFrame, feature_columns: Sequence[str]) -> np.ndarray:
    """An id per row that changes at every series change, time gap or row with a missing feature.

    ``frame`` must be sorted by :func:`sort_series`. Rows with a missing feature get id -1.
    """
    if frame.empty:
        return np.zeros(0, dtype=np.int64)
    unknown = sorted(set(frame["timeframe"]) - set(TIMEFRAME_MS))
    if unknown:
        raise DataValidationError("timeframe", unknown[0], f"unknown; expected one of {sorted(TIMEFRAME_MS)}")
    # Unit-independent (DuckDB returns microseconds, pandas often nanoseconds).
    ts_ms = ((pd.to_datetime(frame["ts"], utc=True) - _EPOCH) // pd.Timedelta(milliseconds=1)).to_numpy(np.int64)
    step_ms = frame["timeframe"].map(TIMEFRAME_MS).to_numpy(dtype=np.int64)
    values = frame[list(feature_columns)].to_numpy(dtype=np.float64)
    complete = np.isfinite(values).all(axis=1)

    new_series = np.ones(len(frame), dtype=bool)
    for col in SERIES_COLUMNS:
        col_values = frame[col].to_numpy()
        new_series[1:] &= col_values[1:] == col_values[:-1]
    new_series = ~new_series
    new_series[0] = True
    gap = np.zeros(len(frame), dtype=bool)
    gap[1:] = (ts_ms[1:] - ts_ms[:-1]) != step_ms[1:]
    # A run breaks at a new series, a gap, an incomplete row, or the row after an incomplete one.
    after_incomplete = np.zeros(len(frame), dtype=bool)
    after_incomplete[1:] = ~complete[:-1]
    starts = new_series | gap | ~complete | after_incomplete
    ids = np.cumsum(starts) - 1
    return np.where(complete, ids, -1)


def window_ends(frame: pd.DataFrame, feature_columns: Sequence[str], length: int) -> np.ndarray:
    """Row indices (into the sorted ``frame``) that end a complete window of ``length`` bars."""
    if length < 1:
        raise DataValidationError("window", length, "must be >= 1")
    ids = run_ids(frame, feature_columns)
    if len(ids) == 0:
        return np.zeros(0, dtype=np.int64)
    # Position of each row inside its run.
    starts = np.r_[True, ids[1:] != ids[:-1]]
    run_start_index = np.maximum.accumulate(np.where(starts, np.arange(len(ids)), 0))
    position = np.arange(len(ids)) - run_start_index
    return np.flatnonzero((ids >= 0) & (position >= length - 1)).astype(np.int64)


def gather(values: np.ndarray, ends: np.ndarray, length: int) -> np.ndarray:
    """Stack windows ``values[end - length + 1 : end + 1]`` into shape (n, length, features)."""
    offsets = np.arange(-length + 1, 1, dtype=np.int64)
    return values[ends[:, None] + offsets[None, :]]


@dataclass(frozen=True)
class Standardiser:
    """Per-feature mean and standard deviation, fit on training rows only."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, values: np.ndarray) -> Standardiser:
        """Fit on a (rows, features) array of training rows (missing values ignored)."""
        if values.ndim != 2 or len(values) == 0:
            raise DataValidationError("values", values.shape, "need a non-empty 2-d array to fit on")
        mean = np.nanmean(values, axis=0)
        std = np.nanstd(values, axis=0)
        std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)
        return cls(mean=tuple(float(m) for m in mean), std=tuple(float(s) for s in std))

    def transform(self, values: np.ndarray) -> np.ndarray:
        """(x - mean) / std as float32."""
        if values.shape[-1] != len(self.mean):
            raise DataValidationError("features", values.shape[-1], f"expected {len(self.mean)} columns")
        out = (values - np.asarray(self.mean)) / np.asarray(self.std)
        return out.astype(np.float32)
