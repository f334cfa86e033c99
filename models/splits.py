"""Time splits with a gap between segments (single split and walk-forward folds).

Segments are half-open time intervals ``[start, end)`` over bar times. Between consecutive
segments lies a gap of at least ``gap`` (normally >= the window length in bars), so no training
window or training label overlaps the validation or test period.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd

from cryptolake.errors import DataValidationError


@dataclass(frozen=True)
class Segment:
    """A half-open interval of bar times ``[start, end)``."""

    name: str
    start: pd.Timestamp
    end: pd.Timestamp

    def contains(self, ts: pd.Series | pd.DatetimeIndex | np.ndarray) -> np.ndarray:
        """Boolean mask of ``ts`` inside the segment."""
        values = pd.to_datetime(ts, utc=True)
        return np.asarray((values >= self.start) & (values < self.end))


@dataclass(frozen=True)
class Fold:
    """Train / validation / test segments of one walk-forward step."""

    train: Segment
    valid: Segment
    test: Segment
    gap: timedelta

    def segments(self) -> tuple[Segment, Segment, Segment]:
        return (self.train, self.valid, self.test)


def _bounds(ts: pd.Series) -> tuple[pd.Timestamp, pd.Timestamp]:
    if len(ts) == 0:
        raise DataValidationError("ts", "[]", "cannot split an empty time series")
    values = pd.to_datetime(ts, utc=True)
    return values.min(), values.max()


def time_split(
    ts: pd.Series,
    *,
    valid_fraction: float,
    test_fraction: float,
    gap: timedelta,
    bar: timedelta,
) -> Fold:
    """One chronological train / validation / test split of the span of ``ts``.

    The span (first bar to last bar plus one ``bar``) minus two gaps is divided by the fractions;
    train comes first, then a gap, validation, a gap, test.
    """
    for name, value in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if not 0 < value < 1:
            raise DataValidationError(name, value, "must be between 0 and 1")
    if valid_fraction + test_fraction >= 1:
        total = valid_fraction + test_fraction
        raise DataValidationError("valid_fraction + test_fraction", total, "must be < 1")
    if gap < timedelta(0):
        raise DataValidationError("gap", gap, "must be >= 0")
    first, last = _bounds(ts)
    end = last + pd.Timedelta(bar)
    usable = (end - first) - 2 * pd.Timedelta(gap)
    if usable <= pd.Timedelta(0):
        raise DataValidationError("gap", gap, f"two gaps do not fit in the data span {first}..{end}")
    test_len = (usable * test_fraction).floor("s")
    valid_len = (usable * valid_fraction).floor("s")
    test_start = end - test_len
    valid_end = test_start - pd.Timedelta(gap)
    valid_start = valid_end - valid_len
    train_end = valid_start - pd.Timedelta(gap)
    return Fold(
        train=Segment("train", first, train_end),
        valid=Segment("valid", valid_start, valid_end),
        test=Segment("test", test_start, end),
        gap=gap,
    )


def walk_forward(
    ts: pd.Series,
    *,
    train: timedelta,
    valid: timedelta,
    test: timedelta,
    gap: timedelta,
    step: timedelta | None = None,
    expanding: bool = False,
) -> Iterator[Fold]:
    """Rolling (or expanding) folds over ``ts``: each fold is train, gap, valid, gap, test.

    Successive folds move forward by ``step`` (default: the test length) until the test
    segment would pass the last bar.
    """
    for name, value in (("train", train), ("valid", valid), ("test", test)):
        if value <= timedelta(0):
            raise DataValidationError(name, value, "must be a positive duration")
    if gap < timedelta(0):
        raise DataValidationError("gap", gap, "must be >= 0")
    step = step or test
    if step <= timedelta(0):
        raise DataValidationError("step", step, "must be a positive duration")
    first, last = _bounds(ts)
    origin = first
    while True:
        train_start = first if expanding else origin
        train_end = origin + pd.Timedelta(train)
        valid_start = train_end + pd.Timedelta(gap)
        valid_end = valid_start + pd.Timedelta(valid)
        test_start = valid_end + pd.Timedelta(gap)
        test_end = test_start + pd.Timedelta(test)
        if test_start > last:
            return
        yield Fold(
            train=Segment("train", train_start, train_end),
            valid=Segment("valid", valid_start, valid_end),
            test=Segment("test", test_start, test_end),
            gap=gap,
        )
        origin = origin + pd.Timedelta(step)


def windows_in(segment: Segment, ts: pd.Series, ends: np.ndarray, window: int) -> np.ndarray:
    """Window ends (row indices into ``ts``) whose whole window lies inside ``segment``.

    Both the first and the last bar of the window must be in the segment, so no input of a
    validation/test window comes from the gap or an earlier segment.
    """
    if len(ends) == 0:
        return ends
    first = ts.iloc[ends - window + 1]
    last = ts.iloc[ends]
    return ends[segment.contains(first) & segment.contains(last)]
