"""Ensembles on out-of-fold predictions, feature selection on training rows, and the leaderboard's numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cryptolake.errors import DataValidationError
from models.ensemble import add_ensembles
from models.leaderboard import deflated_sharpe, leaderboard, strategy_returns
from models.selection import METHODS, select_features


def _fold(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """SYNTHETIC fold: member 'good' is informative, 'bad' is noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    good = np.clip(0.5 + (y - 0.5) * 0.4 + rng.normal(0, 0.15, n), 0.01, 0.99)
    bad = rng.uniform(0.3, 0.7, n)
    ts = pd.date_range("2021-01-01", periods=n, freq="30min", tz="UTC")
    return pd.DataFrame({"exchange": "x", "symbol": "S/USD", "timeframe": "30m", "ts": ts, "fold": 0,
                         "segment": np.where(np.arange(n) < n // 2, "valid", "test"), "label": y,
                         "next_log_return": np.where(y == 1, 0.001, -0.001), "good": good, "bad": bad})


def test_stacking_and_selection_learn_on_validation_rows_only():
    fold = _fold()
    out, chosen = add_ensembles(fold, ["good", "bad"])
    assert chosen == "good"
    assert np.array_equal(out["ens_select"], out["good"])
    assert np.allclose(out["ens_mean"], (out["good"] + out["bad"]) / 2)
    # changing test labels cannot change any ensemble: nothing of the test segment is used
    flipped = fold.copy()
    test = flipped["segment"] == "test"
    flipped.loc[test, "label"] = 1 - flipped.loc[test, "label"]
    again, _ = add_ensembles(flipped, ["good", "bad"])
    assert np.array_equal(out["ens_stack"], again["ens_stack"])
    with pytest.raises(DataValidationError, match="members"):
        add_ensembles(fold, ["good"])


@pytest.mark.parametrize("method", METHODS)
def test_each_selection_method_keeps_the_informative_features(method):
    rng = np.random.default_rng(1)
    n = 1500
    x = rng.standard_normal((n, 5))
    y = (x[:, 1] + 0.5 * x[:, 3] + 0.3 * rng.standard_normal(n) > 0).astype(float)
    chosen = select_features(x, y, ["a", "b", "c", "d", "e"], method, 2, seed=0)
    assert chosen.chosen == ("b", "d")
    assert chosen.train_rows == n and set(chosen.scores) == {"a", "b", "c", "d", "e"}


def test_strategy_after_costs_and_the_deflated_sharpe():
    fold = _fold()
    test = fold[fold["segment"] == "test"]
    perfect = test.assign(oracle=test["label"].astype(float))
    r = strategy_returns(perfect, "oracle", 0.5, cost=0.0)
    assert r.sum() == pytest.approx(0.001 * test["label"].sum())
    costly = strategy_returns(perfect, "oracle", 0.5, cost=0.0005)
    entries_and_exits = np.abs(np.diff(np.r_[0.0, test["label"].to_numpy()])).sum()
    assert r.sum() - costly.sum() == pytest.approx(0.0005 * entries_and_exits)
    assert deflated_sharpe(0.5, [0.5, 0.0, -0.1, 0.05], 200, 0.0, 3.0) > 0.99
    assert deflated_sharpe(0.0, [0.5, 0.0, -0.1, 0.05], 200, 0.0, 3.0) < 0.05
    board = leaderboard(fold, threshold=0.5, cost=0.0005, bars_per_year=17532)
    assert list(board["model"]) == ["good", "bad"]  # sorted by AUC
    assert {"accuracy", "auc", "log_loss", "brier", "ece", "sharpe", "deflated_sharpe"} <= set(board.columns)
