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
    s = DriftSettings(min_drifted_columns=1)
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
    # by default one drifted column alone is not drift (it still says it passed); the decayed hit rate is
    lone = drift.detect(ref, live, DriftSettings(), reference_hit_rate=0.55, live_signals=signals, live_returns=returns)
    assert [c.name for c in lone.columns if c.drifted] == ["prediction"] and lone.reasons == loud.reasons[1:]


def test_hit_rate_ignores_flat_signals_and_bad_input_is_named():
    assert drift.hit_rate([1, 0, -1, 1], [0.1, 0.5, 0.2, -0.3]) == pytest.approx(1 / 3)
    assert drift.hit_rate([0, 0], [1, 1]) is None
    with pytest.raises(DataValidationError, match="returns"):
        drift.hit_rate([1, 1], [1])
    with pytest.raises(DataValidationError, match="live"):
        drift.detect({"a": REF}, {}, DriftSettings())
    with pytest.raises(DataValidationError, match="reference"):
        drift.psi([np.nan], REF)


def test_ks_matches_the_cdf_gap_over_both_samples_with_ties():
    ref, live = RNG.integers(0, 20, 3000).astype(float), RNG.integers(3, 25, 400).astype(float)  # SYNTHETIC, tied
    grid = np.concatenate([ref, live])
    gap = np.abs((ref[:, None] <= grid).mean(axis=0) - (live[:, None] <= grid).mean(axis=0)).max()
    assert drift.ks(ref, live) == pytest.approx(gap, abs=1e-12)


def test_block_starts_are_evenly_spaced_contiguous_blocks_that_fit():
    assert list(drift.block_starts(1000, 100, 5)) == [0, 225, 450, 675, 900]
    assert drift.block_starts(1000, 100, 2000).size == 901  # overlapping when few disjoint blocks fit
    assert drift.block_starts(101, 100, 5).size == 0  # the reference left without the block needs 2 rows


def test_calibrate_raises_a_regime_switching_columns_thresholds_and_keeps_the_floors_of_a_stable_one():
    s = DriftSettings(null_quantile=0.99, min_drifted_columns=1)
    # SYNTHETIC: iid normal, and normal whose scale switches between 1 and 3 every 500 rows (volatility regimes)
    iid = RNG.normal(0, 1, 20_000)
    regimes = RNG.normal(0, 1, 20_000) * np.repeat(RNG.choice([1.0, 3.0], 40), 500)
    t = drift.calibrate({"iid": iid, "regimes": regimes, "short": iid[:150]},
                        {"iid": 1000, "regimes": 250, "short": 250}, s)
    assert (t["iid"].psi, t["iid"].ks) == (s.psi_threshold, s.ks_threshold) and t["iid"].blocks == s.null_blocks
    assert t["iid"].ks_null is not None and t["iid"].ks_null < s.ks_threshold  # sampling noise of 1,000 rows only
    assert t["regimes"].ks > 0.2 and t["regimes"].psi > 0.3 and t["regimes"].quantile == 0.99
    assert t["short"] == drift.Threshold.floors(s)  # no block of 250 fits in 150 rows
    calm, wild = RNG.normal(0, 1, 250), RNG.normal(0, 3, 250)  # SYNTHETIC live windows of either regime
    quiet = drift.detect({"regimes": regimes}, {"regimes": calm}, s, thresholds=t)
    assert not quiet.drifted and drift.detect({"regimes": regimes}, {"regimes": wild}, s, thresholds=t).reasons == ()
    # the same calm window against the iid column's floors: KS of N(0,1) vs the mixture is far above 0.1
    floors = drift.detect({"regimes": regimes}, {"regimes": calm}, s)
    assert floors.drifted and floors.reasons[0].startswith("regimes: ") and "> floor 0.100" in floors.reasons[0]
    loud = drift.detect({"regimes": regimes}, {"regimes": RNG.normal(0, 9, 250)}, s, thresholds=t)  # x3 of the wild
    c = loud.columns[0]
    null = "(null q0.99 over 200 blocks)"
    assert loud.reasons == (f"regimes: PSI {c.psi:.3f} > calibrated {c.psi_threshold:.3f} {null}; "
                            + f"KS {c.ks:.3f} > calibrated {c.ks_threshold:.3f} {null}",)


def test_the_null_compares_each_block_with_the_reference_left_without_it():
    values = np.round(RNG.normal(0, 1, 4000), 1)  # SYNTHETIC, with ties
    starts = drift.block_starts(values.size, 300, 12)
    null_psi, null_ks = drift._Reference(values, 10).null(values, starts, 300)
    for s, p, k in zip(starts, null_psi, null_ks, strict=True):
        rest, block = np.delete(values, np.arange(s, s + 300)), values[s:s + 300]
        assert k == pytest.approx(drift.ks(rest, block), abs=1e-12)
        assert 0 <= p < 0.2  # PSI on the full reference's bins, the block's rows taken out of their shares
