"""The consistency rule of a candle, written once.

A candle is consistent when its prices are finite and positive, ``low <= open, close <= high``
and its volume is finite and ``>= 0``. The producer's schema check, silver's flags and the
trader's ``Bar`` all call :func:`candle_problems` (one candle) or :func:`candle_checks`
(arrays of candles): the two evaluate the same rule body (:func:`_rule`) with scalar or
vectorised ``isfinite``, so they cannot drift apart.

Two tiers:

* **malformed** (:data:`MALFORMED`): a non-finite number cannot be carried as JSON; the
  producer rejects it to the dead-letter topic.
* **inconsistent** (the rest): a faithful record of a bad print. It lands, silver flags it
  (``is_valid`` false, reason in ``flag_reasons``), training sets and the trader skip it.

A *stale* bar is one more flat bar (``open == high == low == close`` and ``volume == 0``) in a
run that is already ``max_flat_bars`` long. The rule is causal (bar ``t`` is judged on bars up
to ``t``), so a live feed and a batch over the same bars flag the same bars;
:class:`StaleTracker` holds the run length of one series and :func:`stale_flags` runs it over
an array.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

NON_FINITE_PRICE = "non_finite_price"
NON_FINITE_VOLUME = "non_finite_volume"
NON_POSITIVE_PRICE = "non_positive_price"
HIGH_BELOW_LOW = "high_below_low"
OPEN_CLOSE_OUTSIDE_RANGE = "open_close_outside_range"
NEGATIVE_VOLUME = "negative_volume"
STALE = "stale"

#: Problems that make a candle unrepresentable (rejected on produce, never landed).
MALFORMED: frozenset[str] = frozenset({NON_FINITE_PRICE, NON_FINITE_VOLUME})
#: Every problem :func:`candle_checks` reports, in the order reasons are listed.
CANDLE_PROBLEMS: tuple[str, ...] = (
    NON_FINITE_PRICE,
    NON_FINITE_VOLUME,
    NON_POSITIVE_PRICE,
    HIGH_BELOW_LOW,
    OPEN_CLOSE_OUTSIDE_RANGE,
    NEGATIVE_VOLUME,
)


def _rule(o: Any, h: Any, lo: Any, c: Any, v: Any, isfinite: Callable[[Any], Any]) -> tuple[Any, ...]:
    """The rule body: one truth value (or array) per entry of :data:`CANDLE_PROBLEMS`.

    Only ``&``, ``|``, ``^`` and comparisons are used, so Python floats and NumPy arrays both work.
    A comparison with NaN is false, hence the ``finite &`` guards.
    """
    fp = isfinite(o) & isfinite(h) & isfinite(lo) & isfinite(c)
    fv = isfinite(v)
    return (
        fp ^ True,
        fv ^ True,
        fp & ((o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0)),
        fp & (h < lo),
        fp & ((o > h) | (o < lo) | (c > h) | (c < lo)),
        fv & (v < 0),
    )


def _scalar_isfinite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def candle_problems(open_: float, high: float, low: float, close: float, volume: float) -> tuple[str, ...]:
    """The problems of one candle (empty when it is consistent), in :data:`CANDLE_PROBLEMS` order."""
    hits = _rule(open_, high, low, close, volume, _scalar_isfinite)
    return tuple(name for name, hit in zip(CANDLE_PROBLEMS, hits, strict=True) if hit)


def candle_checks(
    open_: Any, high: Any, low: Any, close: Any, volume: Any
) -> dict[str, np.ndarray]:
    """The rule over arrays of candles: ``{problem: bool array}`` for every problem."""
    o, h, lo, c, v = (np.asarray(x, dtype=float) for x in (open_, high, low, close, volume))
    hits = _rule(o, h, lo, c, v, np.isfinite)
    return {name: np.asarray(hit, dtype=bool) for name, hit in zip(CANDLE_PROBLEMS, hits, strict=True)}


def is_flat(open_: Any, high: Any, low: Any, close: Any, volume: Any) -> Any:
    """``open == high == low == close`` and ``volume == 0`` (scalar or array): no trade in the bar."""
    return (open_ == high) & (high == low) & (low == close) & (volume == 0)


class StaleTracker:
    """Run length of flat bars of one series; a bar beyond ``max_flat_bars`` in a run is stale."""

    __slots__ = ("max_flat_bars", "run")

    def __init__(self, max_flat_bars: int, run: int = 0) -> None:
        if max_flat_bars < 1:
            raise ValueError(f"max_flat_bars={max_flat_bars} must be >= 1")
        self.max_flat_bars = max_flat_bars
        self.run = run

    def update(self, flat: bool) -> bool:
        """Account for the next bar of the series; True if that bar is stale."""
        self.run = self.run + 1 if flat else 0
        return self.run > self.max_flat_bars


def stale_flags(flat: Any, max_flat_bars: int) -> np.ndarray:
    """Stale flags of one series ordered by time (the :class:`StaleTracker` rule over an array)."""
    tracker = StaleTracker(max_flat_bars)
    return np.fromiter((tracker.update(bool(f)) for f in np.asarray(flat, dtype=bool)), dtype=bool)
