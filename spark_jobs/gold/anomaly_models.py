"""Model-based anomaly scores beside gold's robust z-score: an IsolationForest and PCA reconstruction error.

Both detectors look at one bar's shape (its return against the recent volatility, its volume, where it
closes in its bands and against VWAP). Per series and calendar month they are fit on the ``lookback`` of
gold feature rows before the month's first bar only, and score that month's rows: a score never uses
its own bar or a later one, and any cut of the intervals gives the same values (fixed seed, same
history). The flag thresholds are the ``flag_quantile`` of the detector's scores on
its own fit rows, so nothing is tuned on the rows being scored; "labelled injected anomalies"
(:func:`inject_spikes`, SYNTHETIC) measure their precision and recall against the robust z-score.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from cryptolake.errors import DataValidationError
from spark_jobs.gold.features import SERIES_KEYS

DETECTOR_INPUTS: tuple[str, ...] = ("log_ret_1", "log_ret_2", "volatility_20", "volume_z_20", "bb_pctb",
                                    "vwap_20_dev")
SCORE_COLUMNS: tuple[str, ...] = ("iforest_score", "iforest_flag", "pca_error", "pca_flag")
MIN_FIT_ROWS = 200


@dataclass(frozen=True)
class DetectorConfig:
    """Settings of both detectors (part of what makes a score reproducible)."""

    lookback: timedelta = timedelta(days=60)
    flag_quantile: float = 0.995
    trees: int = 50
    pca_components: int = 2
    seed: int = 7

    def __post_init__(self) -> None:
        if not 0.5 < self.flag_quantile < 1:
            raise DataValidationError("flag_quantile", self.flag_quantile, "must be in (0.5, 1)")
        if not 1 <= self.pca_components < len(DETECTOR_INPUTS):
            raise DataValidationError("pca_components", self.pca_components,
                                      f"must be in [1, {len(DETECTOR_INPUTS) - 1}]")


def shape_matrix(series: pd.DataFrame) -> np.ndarray:
    """The detectors' inputs per bar of one time-sorted series, each against the bar *before*'s volatility.

    Returns in volatility units (1 and 2 bars), the VWAP deviation in the same units, %B and the
    volume z-score: a spike's own bar cannot dilute its yardstick (a 20-bar std that includes the
    spike caps its z near sqrt(19)).
    """
    missing = [c for c in DETECTOR_INPUTS if c not in series.columns]
    if missing:
        raise DataValidationError("features", missing, "columns the anomaly detectors need")
    vol = series["volatility_20"].shift(1).to_numpy(float)
    scale = np.where(vol > 1e-9, vol, np.nan)
    return np.column_stack([
        series["log_ret_1"].to_numpy(float) / scale,
        series["log_ret_2"].to_numpy(float) / scale,
        series["vwap_20_dev"].to_numpy(float) / scale,
        series["bb_pctb"].to_numpy(float),
        series["volume_z_20"].to_numpy(float),
    ])


def _robust_standardise(fit: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    med = np.median(fit, axis=0)
    iqr = np.subtract(*np.percentile(fit, [75, 25], axis=0))
    scale = np.where(iqr > 1e-12, iqr / 1.349, 1.0)
    return (fit - med) / scale, (other - med) / scale


def score_series(x_fit: np.ndarray, x_new: np.ndarray, config: DetectorConfig) -> pd.DataFrame:
    """Scores of the rows ``x_new`` by detectors fit on ``x_fit`` (earlier rows); NaN where too little."""
    from sklearn.decomposition import PCA
    from sklearn.ensemble import IsolationForest

    out = pd.DataFrame({"iforest_score": np.nan, "iforest_flag": False, "pca_error": np.nan, "pca_flag": False},
                       index=range(len(x_new)))
    x_fit = x_fit[np.isfinite(x_fit).all(axis=1)]
    usable = np.isfinite(x_new).all(axis=1)
    if len(x_fit) < MIN_FIT_ROWS or not usable.any():
        return out
    z_fit, z_new = _robust_standardise(x_fit, x_new[usable])
    forest = IsolationForest(n_estimators=config.trees, random_state=config.seed).fit(z_fit)
    fit_scores, new_scores = -forest.score_samples(z_fit), -forest.score_samples(z_new)
    pca = PCA(n_components=config.pca_components, random_state=config.seed).fit(z_fit)

    def error(z: np.ndarray) -> np.ndarray:
        return np.asarray(((z - pca.inverse_transform(pca.transform(z))) ** 2).sum(axis=1))

    fit_errors, new_errors = error(z_fit), error(z_new)
    out.loc[usable, "iforest_score"] = new_scores
    out.loc[usable, "pca_error"] = new_errors
    out.loc[usable, "iforest_flag"] = new_scores > np.quantile(fit_scores, config.flag_quantile)
    out.loc[usable, "pca_flag"] = new_errors > np.quantile(fit_errors, config.flag_quantile)
    return out


def refit_starts(start: datetime, end: datetime) -> list[pd.Timestamp]:
    """The calendar-month starts whose detectors score ``[start, end)`` (the first may precede start)."""
    lo = pd.Timestamp(start).tz_convert("UTC")
    first = pd.Timestamp(year=lo.year, month=lo.month, day=1, tz="UTC")
    return list(pd.date_range(first, pd.Timestamp(end).tz_convert("UTC"), freq="MS", inclusive="left"))


def score_interval(features: pd.DataFrame, start: datetime, end: datetime,
                   config: DetectorConfig | None = None) -> pd.DataFrame:
    """Gold feature rows with ``start <= ts < end``, keyed, with :data:`SCORE_COLUMNS`.

    A bar is scored by the detectors of its calendar month, fit on the ``lookback`` before that month's
    first bar: the same bar gets the same score however the intervals are cut (a daily run and a
    whole-history run agree), and never from its own month's data. ``features`` must hold that lookback.
    """
    config = config or DetectorConfig()
    if start >= end:
        raise DataValidationError("interval", f"{start.isoformat()}..{end.isoformat()}", "start must be < end")
    raw = features["ts"]
    integer = pd.api.types.is_integer_dtype(raw)
    ts = pd.to_datetime(raw, unit="ms", utc=True) if integer else pd.to_datetime(raw, utc=True)
    months = refit_starts(start, end)
    lo, hi = pd.Timestamp(start), pd.Timestamp(end)
    parts = []
    for _, group in features.assign(ts=ts).groupby(list(SERIES_KEYS), sort=True):
        group = group.sort_values("ts").reset_index(drop=True)
        x = shape_matrix(group)
        bar_ts = group["ts"]
        for month in months:
            month_end = month + pd.offsets.MonthBegin(1)
            new = ((bar_ts >= max(lo, month)) & (bar_ts < min(hi, month_end))).to_numpy()
            if not new.any():
                continue
            fit = ((bar_ts >= month - config.lookback) & (bar_ts < month)).to_numpy()
            scored = score_series(x[fit], x[new], config)
            parts.append(pd.concat([group.loc[new, [*SERIES_KEYS, "ts"]].reset_index(drop=True), scored], axis=1))
    columns = [*SERIES_KEYS, "ts", *SCORE_COLUMNS]
    if not parts:
        return pd.DataFrame(columns=columns)
    out = pd.concat(parts, ignore_index=True)[columns]
    out["iforest_flag"] = out["iforest_flag"].astype(bool)
    out["pca_flag"] = out["pca_flag"].astype(bool)
    return out


def inject_spikes(bars: pd.DataFrame, positions: np.ndarray, seed: int = 0) -> tuple[pd.DataFrame, Injected]:
    """SYNTHETIC anomalies in real bars: at each position the close jumps 3-8 % and volume is 10-30x.

    Returns the changed copy and the labels: the spike bars' open times, and the bars right after them
    (their return comes back from the spike: no detector is scored on them, either way).
    """
    rng = np.random.default_rng(seed)
    out = bars.sort_values("open_time").reset_index(drop=True).copy()
    if len(positions) and (positions.min() < 0 or positions.max() >= len(out) - 1):
        raise DataValidationError("positions", int(positions.max()), f"must be within [0, {len(out) - 2}]")
    jump = 1 + rng.choice([-1, 1], len(positions)) * rng.uniform(0.03, 0.08, len(positions))
    out.loc[positions, "close"] = out.loc[positions, "close"].to_numpy() * jump
    out.loc[positions, "high"] = np.maximum(out.loc[positions, "high"], out.loc[positions, "close"])
    out.loc[positions, "low"] = np.minimum(out.loc[positions, "low"], out.loc[positions, "close"])
    out.loc[positions, "volume"] = out.loc[positions, "volume"].to_numpy() * rng.uniform(10, 30, len(positions))
    return out, Injected(spikes=out.loc[positions, "open_time"].to_numpy(),
                         after=out.loc[positions + 1, "open_time"].to_numpy())


@dataclass(frozen=True)
class Injected:
    """Open times of SYNTHETIC spike bars, and of the bar after each (left out of the scoring)."""

    spikes: np.ndarray
    after: np.ndarray

    def evaluate(self, open_times: np.ndarray, flags: np.ndarray) -> tuple[float, float]:
        """(precision, recall) of ``flags`` over bars ``open_times``, the bars right after a spike left out."""
        keep = ~np.isin(open_times, np.setdiff1d(self.after, self.spikes))
        return precision_recall(np.asarray(flags, bool)[keep], np.isin(open_times, self.spikes)[keep])


def precision_recall(flags: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(precision, recall) of boolean ``flags`` against boolean ``truth``; NaN precision if nothing flagged."""
    flags, truth = np.asarray(flags, dtype=bool), np.asarray(truth, dtype=bool)
    hits = int((flags & truth).sum())
    precision = hits / int(flags.sum()) if flags.any() else float("nan")
    recall = hits / int(truth.sum()) if truth.any() else float("nan")
    return precision, recall
