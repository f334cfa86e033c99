"""The consistency rule of a candle, written once.

A candle is consistent when its prices are finite and positive, ``low <= open, close <= high``
and its volume is finite and ``>= 0``. The producer's schema check, silver's flags and the
trader's ``Bar`` all call :func:`candle_problems` (one candle) or :func:`candle_checks`
(arrays of candles): the two evaluate the same rule body (:func:`_rule`) with scalar or
vectorised ``isfinite``, so they cannot drift apart. :func:`check_candle` raises on the first
problem, naming its field (:func:`problem_field`) and value.

Two tiers:

* **malformed** (:data:`MALFORMED`): a non-finite number cannot be carried as JSON; the
  producer rejects it to the dead-letter topic.
* **inconsistent** (the rest): a faithful record of a bad print. It lands, silver flags it
  (``is_valid`` false, reason in ``flag_reasons``), training sets and the trader skip it.

A *stale* bar is one more flat bar (``open == high == low == close`` and ``volume == 0``) in a
run that is already ``max_flat_bars`` long. The rule is causal (bar ``t`` is judged on bars up
to ``t``), so a live feed and a batch over the same bars flag the same bars;
:class:`StaleTracker` holds the run length of one series (live: bar by bar) and :func:`stale_flags`
applies the same rule to an array (batch).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Real
from typing import Any

import numpy as np

from cryptolake.errors import DataValidationError

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


#: Why a candle with each problem is refused, as the reason of a DataValidationError.
PROBLEM_REASONS: dict[str, str] = {
    NON_FINITE_PRICE: "must be a finite number",
    NON_FINITE_VOLUME: "must be a finite number",
    NON_POSITIVE_PRICE: "must be > 0",
    HIGH_BELOW_LOW: "must be >= low",
    OPEN_CLOSE_OUTSIDE_RANGE: "open and close must lie in [low, high]",
    NEGATIVE_VOLUME: "must be >= 0",
}
_PRICES = ("open", "high", "low", "close")


def _number(x: Any) -> float:
    """``x`` as a float; anything that is not a real number (None, a string, a bool) becomes NaN."""
    if type(x) is float:  # the hot path: every candle of every feed
        return x
    return float(x) if isinstance(x, Real) and not isinstance(x, bool) else math.nan


def candle_problems(open_: float, high: float, low: float, close: float, volume: float) -> tuple[str, ...]:
    """The problems of one candle (empty when it is consistent), in :data:`CANDLE_PROBLEMS` order."""
    o, h, lo, c, v = _number(open_), _number(high), _number(low), _number(close), _number(volume)
    # A consistent candle passes this chain (NaN fails every comparison, inf fails "< inf"): the
    # common case skips the rule body; the test grid checks both paths agree on every edge case.
    if 0 < lo <= o <= h < math.inf and lo <= c <= h and 0 <= v < math.inf:
        return ()
    hits = _rule(o, h, lo, c, v, math.isfinite)
    return tuple(name for name, hit in zip(CANDLE_PROBLEMS, hits, strict=True) if hit)


def problem_field(
    problem: str, open_: float, high: float, low: float, close: float, volume: float
) -> tuple[str, float]:
    """The field (and its value) a problem of this candle is reported on.

    A price problem names the first offending price; a range problem names ``high`` when
    ``high`` is below open or close, else ``low``.
    """
    prices = dict(zip(_PRICES, (open_, high, low, close), strict=True))
    if problem == NON_FINITE_PRICE:
        name = next(n for n, x in prices.items() if not math.isfinite(_number(x)))
    elif problem == NON_POSITIVE_PRICE:
        name = next(n for n, x in prices.items() if _number(x) <= 0)
    elif problem == HIGH_BELOW_LOW:
        name = "high"
    elif problem == OPEN_CLOSE_OUTSIDE_RANGE:
        name = "high" if _number(high) < max(_number(open_), _number(close)) else "low"
    elif problem in (NON_FINITE_VOLUME, NEGATIVE_VOLUME):
        return "volume", volume
    else:
        raise ValueError(f"unknown candle problem {problem!r}, expected one of {CANDLE_PROBLEMS}")
    return name, prices[name]


def check_candle(
    open_: float, high: float, low: float, close: float, volume: float, *, tier: frozenset[str] | None = None
) -> None:
    """Raise :class:`DataValidationError` on the candle's first problem (of ``tier`` only, if given)."""
    problems = [p for p in candle_problems(open_, high, low, close, volume) if tier is None or p in tier]
    if problems:
        name, value = problem_field(problems[0], open_, high, low, close, volume)
        raise DataValidationError(name, value, f"{problems[0]}: {PROBLEM_REASONS[problems[0]]}")


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
    """Run length of flat bars of one series; a bar beyond ``max_flat_bars`` in a run is stale.

    ``run`` is the length of the flat run the series is in (0 after a bar that is not flat), so a
    tracker can resume where another stopped.
    """

    __slots__ = ("max_flat_bars", "run")

    def __init__(self, max_flat_bars: int, run: int = 0) -> None:
        _check_max_flat_bars(max_flat_bars)
        if run < 0:
            raise DataValidationError("run", run, "a run length must be >= 0")
        self.max_flat_bars = max_flat_bars
        self.run = run

    def update(self, flat: bool) -> bool:
        """Account for the next bar of the series; True if that bar is stale."""
        self.run = self.run + 1 if flat else 0
        return self.run > self.max_flat_bars


def flat_run_lengths(flat: Any) -> np.ndarray:
    """Length of the flat run each bar of one series ends (0 for a bar that is not flat)."""
    flat = np.asarray(flat, dtype=bool)
    idx = np.arange(len(flat))
    last_not_flat = np.maximum.accumulate(np.where(flat, -1, idx))
    return np.where(flat, idx - last_not_flat, 0)


def stale_flags(flat: Any, max_flat_bars: int) -> np.ndarray:
    """Stale flags of one series ordered by time: the :class:`StaleTracker` rule, vectorised."""
    _check_max_flat_bars(max_flat_bars)
    return np.asarray(flat_run_lengths(flat) > max_flat_bars, dtype=bool)


def _check_max_flat_bars(max_flat_bars: int) -> None:
    if isinstance(max_flat_bars, bool) or not isinstance(max_flat_bars, int) or max_flat_bars < 1:
        raise DataValidationError("max_flat_bars", max_flat_bars, "must be an integer >= 1")
