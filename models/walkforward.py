"""Walk-forward folds as tasks: expanding or rolling windows with a purge and an embargo.

The span after an initial training area is cut into ``n_folds`` equal test blocks. Fold i tests
on block i and learns from what lies before it: validation (early stopping, stacking, selection)
is the last ``valid_fraction`` of that area, training the rest (from the first bar when
expanding, or a fixed length when rolling). Between train and valid, and between valid and test,
lies a gap of ``max(window, horizon + embargo)`` bars: the purge removes every training row
whose label (``horizon`` bars ahead) reaches into the next segment, the embargo adds bars on top
(serial correlation), and the window keeps a later segment's inputs out of an earlier one. Every
model is evaluated on every fold (:class:`FoldTask`), and results are kept per fold.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd

from cryptolake.errors import DataValidationError
from models.splits import Fold, Segment, windows_in


@dataclass(frozen=True)
class FoldTask:
    """One unit of walk-forward work: fold ``index`` of ``of``."""

    index: int
    of: int
    fold: Fold

    @property
    def name(self) -> str:
        return f"fold {self.index + 1}/{self.of}"


def purge_bars(window: int, horizon: int, embargo: int) -> int:
    """The gap between segments in bars: the window, or the label horizon plus the embargo if longer."""
    for name, value in (("window", window), ("horizon", horizon)):
        if value < 1:
            raise DataValidationError(name, value, "must be >= 1")
    if embargo < 0:
        raise DataValidationError("embargo", embargo, "must be >= 0")
    return max(window, horizon + embargo)


def walk_forward_tasks(
    ts: pd.Series,
    *,
    n_folds: int,
    bar: timedelta,
    gap_bars: int,
    valid_fraction: float = 0.2,
    initial_fraction: float = 0.4,
    expanding: bool = True,
) -> list[FoldTask]:
    """The folds over the span of ``ts`` (see the module)."""
    if n_folds < 1:
        raise DataValidationError("walk_forward", n_folds, "needs at least one fold")
    if not 0 < valid_fraction < 1:
        raise DataValidationError("valid_fraction", valid_fraction, "must be between 0 and 1")
    if not 0 < initial_fraction < 1:
        raise DataValidationError("initial_fraction", initial_fraction, "must be between 0 and 1")
    if len(ts) == 0:
        raise DataValidationError("ts", "[]", "cannot fold an empty time series")
    values = pd.to_datetime(ts, utc=True)
    first, end = values.min(), values.max() + pd.Timedelta(bar)
    gap = pd.Timedelta(bar) * gap_bars
    span = end - first
    initial = (span * initial_fraction).floor(pd.Timedelta(bar))
    block = ((span - initial) / n_folds).floor(pd.Timedelta(bar))
    if block <= pd.Timedelta(bar) or initial <= 2 * gap:
        raise DataValidationError("walk_forward", n_folds, f"{n_folds} folds with a {gap} gap do not fit in {span}")
    tasks = []
    for i in range(n_folds):
        test_start = first + initial + block * i
        test_end = end if i == n_folds - 1 else test_start + block
        learn_start = first if expanding else test_start - initial
        learn = test_start - gap - learn_start
        valid_len = (learn * valid_fraction).floor(pd.Timedelta(bar))
        valid_end = test_start - gap
        valid_start = valid_end - valid_len
        train_end = valid_start - gap
        if train_end <= learn_start:
            raise DataValidationError("valid_fraction", valid_fraction, f"leaves no training time in fold {i + 1}")
        fold = Fold(train=Segment("train", learn_start, train_end), valid=Segment("valid", valid_start, valid_end),
                    test=Segment("test", test_start, test_end), gap=gap.to_pytimedelta())
        tasks.append(FoldTask(index=i, of=n_folds, fold=fold))
    return tasks


def segment_rows(fold: Fold, ts: pd.Series, ends: np.ndarray, window: int, horizon: int,
                 bar: timedelta) -> dict[str, np.ndarray]:
    """Window ends per segment; a row's label must be known (``horizon`` bars on) by its segment's end.

    This is the purge applied to rows: a training row whose label reaches past the training
    segment is dropped, and so is a validation row whose label reaches past validation.
    """
    out = {}
    for seg in fold.segments():
        rows = windows_in(seg, ts, ends, window)
        if seg.name != "test":  # test labels feed nothing later
            rows = rows[((ts.iloc[rows] + pd.Timedelta(bar * horizon)) <= seg.end).to_numpy()]
        out[seg.name] = rows
    return out
