"""Limited forward fill of short gaps, so a net gets contiguous windows, with every filled value flagged.

A missing bar (a hole of at most ``max_gap`` bars in a series' time grid) is inserted and its features
forward-filled from the last real bar; a missing feature value in a real row is filled the same way
(at most ``max_gap`` consecutive fills). Only the feature columns are filled: prices and labels of an
inserted bar stay missing, so no label is ever made from a filled value. Each row carries
:data:`IMPUTED` (True if any of its features was filled) and :data:`IMPUTED_CELLS` (how many). The
result lives only in the model's memory: nothing is written back into silver or gold, and a filled
row never ends a window (it is never trained on, never scored).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cryptolake.errors import DataValidationError
from cryptolake.types import TIMEFRAME_MS
from models.windows import SERIES_COLUMNS, sort_series

IMPUTED = "imputed"
IMPUTED_CELLS = "imputed_cells"
_EPOCH = pd.Timestamp(0, tz="UTC")


@dataclass(frozen=True)
class Imputation:
    """A series-sorted frame with short gaps filled, and what was filled."""

    frame: pd.DataFrame
    inserted_rows: int
    filled_cells: int

    @property
    def imputed(self) -> np.ndarray:
        """Boolean mask over ``frame``'s rows: True where any feature value was filled."""
        return self.frame[IMPUTED].to_numpy(dtype=bool)

    def summary(self) -> dict[str, int]:
        """Counts for the model's metadata and the run report."""
        return {"inserted_rows": self.inserted_rows, "filled_cells": self.filled_cells,
                "imputed_rows": int(self.imputed.sum())}


def _missing_bars(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of a sorted frame: bars missing before it in its series, its time (ms) and bar length (ms)."""
    ts_ms = ((pd.to_datetime(frame["ts"], utc=True) - _EPOCH) // pd.Timedelta(milliseconds=1)).to_numpy(np.int64)
    step = frame["timeframe"].map(TIMEFRAME_MS).to_numpy(dtype=np.int64)
    same = np.zeros(len(frame), dtype=bool)
    same[1:] = True
    for col in SERIES_COLUMNS:
        v = frame[col].to_numpy()
        same[1:] &= v[1:] == v[:-1]
    missing = np.zeros(len(frame), dtype=np.int64)
    delta = np.diff(ts_ms, prepend=ts_ms[:1])
    ok = same & (delta > 0) & (delta % np.maximum(step, 1) == 0)
    missing[ok] = delta[ok] // step[ok] - 1
    return missing, ts_ms, step


def impute_short_gaps(frame: pd.DataFrame, feature_columns: Sequence[str], max_gap: int) -> Imputation:
    """Insert missing bars of holes up to ``max_gap`` bars and forward-fill features at most ``max_gap`` times.

    ``max_gap = 0`` fills nothing (the rows are only sorted and flagged False).
    """
    if max_gap < 0:
        raise DataValidationError("impute_max_gap", max_gap, "must be >= 0")
    unknown = sorted(set(frame["timeframe"].astype(str)) - set(TIMEFRAME_MS)) if len(frame) else []
    if unknown:
        raise DataValidationError("timeframe", unknown[0], f"unknown; expected one of {sorted(TIMEFRAME_MS)}")
    features = list(feature_columns)
    ordered = sort_series(frame)
    if max_gap == 0 or ordered.empty:
        out = ordered.assign(**{IMPUTED: False, IMPUTED_CELLS: 0})
        return Imputation(out, 0, 0)
    missing, ts_ms, step = _missing_bars(ordered)
    holes = np.flatnonzero((missing >= 1) & (missing <= max_gap))
    counts = missing[holes]
    parent = np.repeat(holes, counts)  # the real row after each inserted bar
    k = np.concatenate([np.arange(1, c + 1) for c in counts]) if len(counts) else np.zeros(0, dtype=np.int64)
    inserted_ms = ts_ms[parent] - (np.repeat(counts, counts) + 1 - k) * step[parent]
    keys = ordered.loc[parent, list(SERIES_COLUMNS)].reset_index(drop=True)
    ts_dtype = ordered["ts"].dtype
    keys["ts"] = pd.to_datetime(inserted_ms, unit="ms", utc=True).astype(ts_dtype)
    both = pd.concat([ordered.assign(_real=True), keys.assign(_real=False)], ignore_index=True)
    both = sort_series(both)
    series = both.groupby(list(SERIES_COLUMNS), sort=False, observed=True)
    was_na = both[features].isna().to_numpy()
    both[features] = series[features].ffill(limit=max_gap)
    filled = was_na & both[features].notna().to_numpy()
    real = both.pop("_real").to_numpy(dtype=bool)
    both[IMPUTED_CELLS] = filled.sum(axis=1).astype(np.int64)
    both[IMPUTED] = (both[IMPUTED_CELLS] > 0) | ~real
    return Imputation(both, inserted_rows=int((~real).sum()), filled_cells=int(filled.sum()))
