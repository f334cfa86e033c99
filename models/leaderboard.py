"""The leaderboard: model x fold metrics, calibration, the strategy after costs and the deflated Sharpe.

Input is the walk-forward prediction frame: one row per out-of-sample bar with the key columns,
``fold``, ``segment`` (valid/test), ``label``, ``next_log_return`` and one probability column per
model (nets, baselines, ensembles). Only test rows are scored.

The strategy of a model is long one unit while ``probability >= threshold``, flat otherwise, per
series, paying ``cost`` (a log return, per side) on every entry and exit; the portfolio is the
equal-weight mean over series per bar. It is a vectorised proxy of the trading node's
long/flat threshold strategy with the paper venue's fee and slippage, not the node itself.

The deflated Sharpe ratio (Bailey and Lopez de Prado, 2014) is the probability that a strategy's
Sharpe ratio is above what the best of N unskilled trials would reach by luck, N being every
strategy on the board: it corrects the leaderboard's top score for having picked it among many.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import sqrt
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from cryptolake.errors import DataValidationError
from models.calibration import expected_calibration_error, reliability_curve
from models.evaluate import classification_metrics
from models.windows import SERIES_COLUMNS

EULER_GAMMA = 0.5772156649015329
_NON_SCORES = {"exchange", "symbol", "timeframe", "ts", "fold", "segment", "label", "next_log_return"}


def score_columns(predictions: pd.DataFrame) -> list[str]:
    """The model columns of a prediction frame."""
    return [c for c in predictions.columns if c not in _NON_SCORES]


def strategy_returns(test: pd.DataFrame, column: str, threshold: float, cost: float) -> pd.Series:
    """Per-bar portfolio log returns of the long/flat strategy of ``column`` (see the module)."""
    frame = test.sort_values([*SERIES_COLUMNS, "ts"], kind="mergesort")
    position = (frame[column].to_numpy() >= threshold).astype(np.float64)
    series = frame.groupby(list(SERIES_COLUMNS), sort=False).ngroup().to_numpy()
    previous = np.r_[0.0, position[:-1]]
    previous[np.r_[True, series[1:] != series[:-1]]] = 0.0  # each series starts flat
    gross = position * np.nan_to_num(frame["next_log_return"].to_numpy(dtype=np.float64))
    net = gross - cost * np.abs(position - previous)
    return pd.Series(net, index=pd.to_datetime(frame["ts"], utc=True)).groupby(level=0).mean()


def strategy_metrics(returns: pd.Series, bars_per_year: float) -> dict[str, float]:
    """Total return, annualised Sharpe, max drawdown and exposure-free stats of per-bar log returns."""
    r = returns.to_numpy(dtype=np.float64)
    if len(r) < 2:
        raise DataValidationError("returns", len(r), "need at least two bars for strategy metrics")
    equity = np.exp(np.cumsum(r))
    peak = np.maximum.accumulate(np.r_[1.0, equity])[1:]
    sd = float(r.std(ddof=1))
    sharpe_bar = float(r.mean() / sd) if sd > 0 else 0.0
    return {"total_return": float(equity[-1] - 1), "sharpe": sharpe_bar * sqrt(bars_per_year),
            "sharpe_per_bar": sharpe_bar, "max_drawdown": float((equity / peak - 1).min()),
            "skew": float(stats.skew(r)), "kurtosis": float(stats.kurtosis(r, fisher=False)), "bars": float(len(r))}


def deflated_sharpe(sharpe: float, trial_sharpes: Sequence[float], bars: int, skew: float, kurtosis: float) -> float:
    """Probability that per-bar Sharpe ``sharpe`` beats the expected max of ``len(trial_sharpes)`` lucky trials."""
    trials = np.asarray([s for s in trial_sharpes if np.isfinite(s)], dtype=np.float64)
    n = len(trials)
    if n < 2 or bars < 3:
        return float("nan")
    sd = float(trials.std(ddof=1))
    z = stats.norm.ppf
    expected_max = sd * ((1 - EULER_GAMMA) * z(1 - 1 / n) + EULER_GAMMA * z(1 - 1 / (n * np.e)))
    denom = 1 - skew * sharpe + (kurtosis - 1) / 4 * sharpe**2
    if denom <= 0:
        return float("nan")
    return float(stats.norm.cdf((sharpe - expected_max) * sqrt(bars - 1) / sqrt(denom)))


def fold_table(predictions: pd.DataFrame, threshold: float = 0.5) -> pd.DataFrame:
    """Model x fold classification metrics on the test rows."""
    rows = []
    test = predictions[predictions["segment"] == "test"]
    for fold in sorted(test["fold"].unique()):
        part = test[test["fold"] == fold]
        y = part["label"].to_numpy()
        for col in score_columns(part):
            m = classification_metrics(y, part[col].to_numpy(), threshold).as_dict()
            rows.append({"model": col, "fold": int(fold), **m})
    return pd.DataFrame(rows)


def leaderboard(predictions: pd.DataFrame, *, threshold: float, cost: float, bars_per_year: float) -> pd.DataFrame:
    """One row per model: mean fold metrics, calibration (ECE), strategy after costs and deflated Sharpe."""
    folds = fold_table(predictions, threshold)
    test = predictions[predictions["segment"] == "test"]
    rows: list[dict[str, Any]] = []
    for col in score_columns(test):
        mine = folds[folds["model"] == col]
        mean = {k: float(mine[k].mean()) for k in ("accuracy", "auc", "log_loss", "brier")}
        p = test[col].to_numpy()
        ece = expected_calibration_error(reliability_curve(test["label"].to_numpy(), np.clip(p, 0, 1)))
        strat = strategy_metrics(strategy_returns(test, col, threshold, cost), bars_per_year)
        rows.append({"model": col, **mean, "ece": ece, **strat})
    board = pd.DataFrame(rows)
    trials = [float(r["sharpe_per_bar"]) for r in rows]
    board["deflated_sharpe"] = [
        deflated_sharpe(float(r["sharpe_per_bar"]), trials, int(r["bars"]), float(r["skew"]), float(r["kurtosis"]))
        for r in rows
    ]
    return board.sort_values("auc", ascending=False, kind="mergesort").reset_index(drop=True)
