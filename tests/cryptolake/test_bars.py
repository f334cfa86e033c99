"""The one candle rule: scalar and vectorised forms agree; the stale-run rule, live and batch.

Every candle here is SYNTHETIC: a grid of edge-case numbers, not market data.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from cryptolake.bars import (
    CANDLE_PROBLEMS,
    HIGH_BELOW_LOW,
    MALFORMED,
    NEGATIVE_VOLUME,
    NON_FINITE_PRICE,
    NON_FINITE_VOLUME,
    NON_POSITIVE_PRICE,
    OPEN_CLOSE_OUTSIDE_RANGE,
    StaleTracker,
    candle_checks,
    candle_problems,
    check_candle,
    flat_run_lengths,
    is_flat,
    problem_field,
    stale_flags,
)
from cryptolake.errors import DataValidationError

INF = math.inf
NAN = math.nan
PRICES = (NAN, INF, -INF, -1.0, 0.0, 1.0, 2.0, 3.0)
VOLUMES = (NAN, INF, -1.0, 0.0, 5.0)


def test_scalar_and_vectorised_rule_agree_on_every_edge_case() -> None:
    grid = list(itertools.product(PRICES, PRICES, PRICES, PRICES, VOLUMES))
    columns = [np.array(col) for col in zip(*grid, strict=True)]
    checks = candle_checks(*columns)
    assert set(checks) == set(CANDLE_PROBLEMS)
    for i, candle in enumerate(grid):
        vectorised = tuple(p for p in CANDLE_PROBLEMS if checks[p][i])
        assert candle_problems(*candle) == vectorised, candle
    # the grid reaches every problem, and consistent candles too
    assert all(checks[p].any() for p in CANDLE_PROBLEMS)
    assert not np.logical_or.reduce(list(checks.values())).all()


@pytest.mark.parametrize(
    ("candle", "problems"),
    [
        ((1.0, 2.0, 0.5, 1.5, 10.0), ()),
        ((1.0, 1.0, 1.0, 1.0, 0.0), ()),  # a flat, zero-volume bar is consistent (it may be stale)
        ((NAN, 2.0, 0.5, 1.5, 10.0), (NON_FINITE_PRICE,)),
        ((1.0, INF, 0.5, 1.5, 10.0), (NON_FINITE_PRICE,)),
        ((1.0, 2.0, 0.5, 1.5, NAN), (NON_FINITE_VOLUME,)),
        ((1.0, 2.0, 0.5, 1.5, -INF), (NON_FINITE_VOLUME,)),
        ((1.0, 2.0, 0.0, 1.5, 10.0), (NON_POSITIVE_PRICE,)),
        ((-1.0, 2.0, -2.0, 1.5, 10.0), (NON_POSITIVE_PRICE,)),
        ((1.5, 0.5, 2.0, 1.0, 10.0), (HIGH_BELOW_LOW, OPEN_CLOSE_OUTSIDE_RANGE)),
        ((1.0, 2.0, 2.0, 2.0, 10.0), (OPEN_CLOSE_OUTSIDE_RANGE,)),  # open below low
        ((1.0, 2.0, 0.5, 2.5, 10.0), (OPEN_CLOSE_OUTSIDE_RANGE,)),  # close above high
        ((1.0, 2.0, 0.5, 1.5, -1.0), (NEGATIVE_VOLUME,)),
        ((0.0, 2.0, 0.5, 3.0, -1.0), (NON_POSITIVE_PRICE, OPEN_CLOSE_OUTSIDE_RANGE, NEGATIVE_VOLUME)),
        ((None, 2.0, 0.5, 1.5, 10.0), (NON_FINITE_PRICE,)),  # not a number at all
        ((1.0, 2.0, 0.5, 1.5, "7"), (NON_FINITE_VOLUME,)),
        ((1.0, 2.0, 0.5, True, 10.0), (NON_FINITE_PRICE,)),  # a bool is not a price
        ((np.float32(1.0), 2, np.int64(1), 1.5, 0), ()),  # NumPy and int numbers are numbers
    ],
)
def test_candle_problems_names_each_problem(candle: tuple[float, ...], problems: tuple[str, ...]) -> None:
    assert candle_problems(*candle) == problems


def test_malformed_tier_is_the_non_finite_numbers() -> None:
    assert frozenset({NON_FINITE_PRICE, NON_FINITE_VOLUME}) == MALFORMED
    assert set(CANDLE_PROBLEMS) > MALFORMED


@pytest.mark.parametrize(
    ("candle", "field", "value", "problem"),
    [
        ((1.0, NAN, 0.5, 1.5, 10.0), "high", NAN, NON_FINITE_PRICE),
        ((1.0, 2.0, 0.5, 1.5, INF), "volume", INF, NON_FINITE_VOLUME),
        ((1.0, 2.0, 0.5, -1.5, 10.0), "close", -1.5, NON_POSITIVE_PRICE),
        ((1.5, 0.5, 2.0, 1.0, 10.0), "high", 0.5, HIGH_BELOW_LOW),
        ((1.0, 0.5, 0.4, 1.0, 0.0), "high", 0.5, OPEN_CLOSE_OUTSIDE_RANGE),  # high below open and close
        ((1.0, 2.0, 1.2, 1.5, 0.0), "low", 1.2, OPEN_CLOSE_OUTSIDE_RANGE),  # low above open
        ((1.0, 2.0, 0.5, 1.5, -3.0), "volume", -3.0, NEGATIVE_VOLUME),
    ],
)
def test_check_candle_names_the_first_problems_field_and_value(
    candle: tuple[float, ...], field: str, value: float, problem: str
) -> None:
    assert problem_field(problem, *candle)[0] == field
    with pytest.raises(DataValidationError) as info:
        check_candle(*candle)
    assert info.value.field == field
    assert info.value.reason.startswith(problem)
    assert (math.isnan(value) and math.isnan(info.value.value)) or info.value.value == value


def test_check_candle_with_a_tier_ignores_problems_outside_it() -> None:
    check_candle(1.5, 0.5, 2.0, 1.0, 10.0, tier=MALFORMED)  # inconsistent, not malformed: passes
    with pytest.raises(DataValidationError, match="volume"):
        check_candle(1.5, 0.5, 2.0, 1.0, NAN, tier=MALFORMED)
    check_candle(1.0, 2.0, 0.5, 1.5, 10.0)
    with pytest.raises(ValueError, match="unknown candle problem"):
        problem_field("stale", 1.0, 1.0, 1.0, 1.0, 0.0)


def test_is_flat_scalar_and_array() -> None:
    assert is_flat(2.0, 2.0, 2.0, 2.0, 0.0)
    assert not is_flat(2.0, 2.0, 2.0, 2.0, 0.1)  # traded at one price: not stale
    assert not is_flat(2.0, 2.1, 2.0, 2.0, 0.0)
    assert not is_flat(NAN, NAN, NAN, NAN, 0.0)  # a missing price is not a frozen one
    o = np.array([1.0, 1.0, 1.0, NAN])
    assert is_flat(o, o, o, np.array([1.0, 1.0, 1.1, NAN]), np.array([0.0, 2.0, 0.0, 0.0])).tolist() == [
        True, False, False, False]


@pytest.mark.parametrize(
    ("flat", "max_flat_bars", "stale"),
    [
        ("", 1, ""),
        ("0000", 1, "0000"),
        ("1", 1, "0"),  # a run of exactly max_flat_bars is allowed
        ("11", 1, "01"),
        ("111", 3, "000"),
        ("1111", 3, "0001"),
        ("11111011110", 3, "00011000010"),  # a bar that is not flat ends the run
        ("111111", 6, "000000"),
        ("1111111", 6, "0000001"),
    ],
)
def test_stale_run_length_edge_cases(flat: str, max_flat_bars: int, stale: str) -> None:
    bits = [c == "1" for c in flat]
    assert stale_flags(bits, max_flat_bars).tolist() == [c == "1" for c in stale]
    tracker = StaleTracker(max_flat_bars)
    assert [tracker.update(b) for b in bits] == [c == "1" for c in stale]


def test_stale_tracker_equals_stale_flags_on_random_series() -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        flat = rng.random(int(rng.integers(0, 300))) < rng.uniform(0.1, 0.95)
        m = int(rng.integers(1, 12))
        tracker = StaleTracker(m)
        live = [tracker.update(bool(f)) for f in flat]
        assert stale_flags(flat, m).tolist() == live
        assert tracker.run == (int(flat_run_lengths(flat)[-1]) if len(flat) else 0)


def test_stale_tracker_resumes_a_run() -> None:
    tracker = StaleTracker(3, run=3)
    assert tracker.update(True)  # the fourth flat bar of the run
    assert not tracker.update(False) and tracker.run == 0
    assert flat_run_lengths([1, 1, 0, 1, 1, 1]).tolist() == [1, 2, 0, 1, 2, 3]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_max_flat_bars_must_be_a_positive_integer(bad: object) -> None:
    with pytest.raises(DataValidationError, match="max_flat_bars"):
        StaleTracker(bad)  # type: ignore[arg-type]
    with pytest.raises(DataValidationError, match="max_flat_bars"):
        stale_flags([True], bad)  # type: ignore[arg-type]
    with pytest.raises(DataValidationError, match="run"):
        StaleTracker(3, run=-1)
