"""Drift detection (pure): PSI and KS values, the verdict per column and the hit-rate decay.

The shifted samples are SYNTHETIC (seeded normal draws): a known shift must be flagged, the
same distribution must not.
"""

from __future__ import annotations

import numpy as np
import pytest

from cryptolake.errors import DataValidationError
from cryptolake.settings import DriftSettings
from pipeline import drift

RNG = np.random.default_rng(7)
REF = RNG.normal(0, 1, 5000)


def test_psi_and_ks_are_zero_for_identical_samples_and_known_for_disjoint_ones():
    assert drift.psi(REF, REF) == pytest.approx(0.0, abs=1e-12)
    assert drift.ks(REF, REF) == 0.0
    assert drift.ks([0, 1, 2, 3], [10, 11, 12, 13]) == 1.0
    # half of the reference's mass at 0, half at 1: a live sample all at 1 moves 0.5 of the mass
    assert drift.ks([0, 0, 1, 1], [1, 1, 1, 1]) == 0.5


def test_psi_matches_its_formula_on_two_bins():
    ref = [0.0] * 50 + [1.0] * 50
    live = [0.0] * 25 + [1.0] * 75
    expected = (0.25 - 0.5) * np.log(0.25 / 0.5) + (0.75 - 0.5) * np.log(0.75 / 0.5)
    assert drift.psi(ref, live, bins=2) == pytest.approx(expected)


def test_same_distribution_is_not_drift_a_shifted_one_is():
    s = DriftSettings()
    same = RNG.normal(0, 1, 2000)
    shifted = RNG.normal(0.8, 1, 2000)  # SYNTHETIC drift: mean moved by 0.8 sd
    assert not drift.column_drift("ret_1", REF, same, s).drifted
    moved = drift.column_drift("ret_1", REF, shifted, s)
    assert moved.drifted and moved.psi > 0.2 and moved.ks > 0.25


def test_detect_names_the_drifted_columns_and_the_decayed_hit_rate():
    s = DriftSettings()
    ref = {"ret_1": REF, "vol": REF * 2, "prediction": RNG.uniform(0.4, 0.6, 5000)}
    live = {"ret_1": RNG.normal(0, 1, 1000), "vol": RNG.normal(0, 2, 1000),
            "prediction": RNG.uniform(0.4, 0.6, 1000)}
    quiet = drift.detect(ref, live, s)
    assert not quiet.drifted and [c.name for c in quiet.columns] == ["prediction", "ret_1", "vol"]
    live["prediction"] = RNG.uniform(0.6, 0.8, 1000)  # SYNTHETIC: the model's outputs moved
    signals = np.array([1, -1] * 500, dtype=float)
    returns = -signals  # every signal wrong
    loud = drift.detect(ref, live, s, reference_hit_rate=0.55, live_signals=signals, live_returns=returns)
    assert loud.live_hit_rate == 0.0
    assert len(loud.reasons) == 2
    assert loud.reasons[0].startswith("prediction: PSI") and loud.reasons[1].startswith("hit rate 0.000 decayed")


def test_hit_rate_ignores_flat_signals_and_bad_input_is_named():
    assert drift.hit_rate([1, 0, -1, 1], [0.1, 0.5, 0.2, -0.3]) == pytest.approx(1 / 3)
    assert drift.hit_rate([0, 0], [1, 1]) is None
    with pytest.raises(DataValidationError, match="returns"):
        drift.hit_rate([1, 1], [1])
    with pytest.raises(DataValidationError, match="live"):
        drift.detect({"a": REF}, {}, DriftSettings())
    with pytest.raises(DataValidationError, match="reference"):
        drift.psi([np.nan], REF)
