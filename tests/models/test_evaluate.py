from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from cryptolake.errors import DataValidationError
from models.calibration import expected_calibration_error, reliability_curve
from models.evaluate import classification_metrics, roc_auc

Y = np.array([1, 0, 1, 1, 0, 0, 1, 0, 1, 1])
P = np.array([0.9, 0.4, 0.5, 0.2, 0.5, 0.1, 0.7, 0.8, 0.5, 0.6])  # ties at 0.5 across classes


def test_metrics_match_sklearn_on_a_hand_made_case():
    m = classification_metrics(Y, P, threshold=0.5)
    pred = (P >= 0.5).astype(int)
    assert m.n == 10 and m.positive_rate == 0.6
    assert m.accuracy == pytest.approx(skm.accuracy_score(Y, pred))
    assert m.precision == pytest.approx(skm.precision_score(Y, pred))
    assert m.recall == pytest.approx(skm.recall_score(Y, pred))
    assert m.f1 == pytest.approx(skm.f1_score(Y, pred))
    assert m.auc == pytest.approx(skm.roc_auc_score(Y, P))
    # By hand: predicted up = idx 0,2,4,6,7,8,9 -> tp=5 (0,2,6,8,9), fp=2 (4,7), fn=1 (3).
    assert (m.precision, m.recall) == pytest.approx((5 / 7, 5 / 6))


def test_threshold_changes_predictions_not_auc():
    lo, hi = classification_metrics(Y, P, 0.3), classification_metrics(Y, P, 0.75)
    assert lo.auc == hi.auc
    assert hi.recall == pytest.approx(skm.recall_score(Y, (P >= 0.75).astype(int)))
    assert lo.recall > hi.recall


def test_no_positive_prediction_gives_zero_precision_like_sklearn():
    m = classification_metrics(Y, np.zeros(10), 0.5)
    assert m.precision == 0.0 and m.recall == 0.0 and m.f1 == 0.0
    assert m.precision == skm.precision_score(Y, np.zeros(10, dtype=int), zero_division=0)


def test_auc_is_nan_with_one_class_and_half_for_constant_scores():
    assert math.isnan(roc_auc(np.ones(4, dtype=int), np.array([0.1, 0.2, 0.3, 0.4])))
    assert roc_auc(Y, np.ones(10)) == 0.5


def test_random_case_matches_sklearn_auc():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p = np.round(rng.random(500), 2)  # rounding creates many ties
    assert roc_auc(y, p) == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)


def test_bad_labels_are_named():
    with pytest.raises(DataValidationError, match="y_true"):
        classification_metrics(np.array([0, 2]), np.array([0.1, 0.2]))
    with pytest.raises(DataValidationError, match="score"):
        classification_metrics(np.array([0, 1]), np.array([0.1, np.nan]))


def test_reliability_curve_bins_by_hand():
    y = np.array([0, 0, 1, 1, 1, 0])
    p = np.array([0.05, 0.15, 0.15, 0.95, 1.0, 0.55])
    curve = reliability_curve(y, p, n_bins=10)
    assert curve["count"].tolist() == [1, 2, 0, 0, 0, 1, 0, 0, 0, 2]
    assert curve.loc[1, "mean_predicted"] == pytest.approx(0.15)
    assert curve.loc[1, "observed_frequency"] == pytest.approx(0.5)
    assert curve.loc[9, "mean_predicted"] == pytest.approx(0.975)  # 1.0 falls in the last bin
    assert curve.loc[9, "observed_frequency"] == 1.0
    assert math.isnan(float(curve["mean_predicted"].iloc[2]))
    ece = expected_calibration_error(curve)
    expected = (1 * 0.05 + 2 * abs(0.5 - 0.15) + 1 * 0.55 + 2 * abs(1 - 0.975)) / 6
    assert ece == pytest.approx(expected)


def test_reliability_curve_rejects_out_of_range():
    with pytest.raises(DataValidationError, match="probability"):
        reliability_curve(np.array([0, 1]), np.array([0.5, 1.5]))
