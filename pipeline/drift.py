"""Drift of live data against the training set: PSI and KS per feature and of the predictions; performance decay.

Pure functions over arrays (no Spark, no registry): the caller loads the champion's training
features and predictions (the reference) and the recent live ones. A feature drifts when its
population stability index (PSI, over the reference's deciles) or its two-sample Kolmogorov-Smirnov
statistic passes the thresholds in :class:`cryptolake.settings.DriftSettings`; the predictions are
checked the same way. Performance decay compares the live hit rate of the signals (signal side vs
the realised return's sign) with the one measured on the training set's test segment.
Thresholds: PSI 0.2 is the usual "significant shift" rule of thumb; KS 0.1 on thousands of bars
is far above sampling noise (the 1% critical value for n = m = 1,000 is about 0.073).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from cryptolake.errors import DataValidationError
from cryptolake.settings import DriftSettings

EPS = 1e-4  # floor of a bin's share, so an empty bin gives a large but finite PSI


@dataclass(frozen=True)
class ColumnDrift:
    """PSI and KS of one column, and whether either passes its threshold."""

    name: str
    psi: float
    ks: float
    drifted: bool


@dataclass(frozen=True)
class DriftReport:
    """Every checked column, the performance decay, and the verdict with its reasons."""

    columns: tuple[ColumnDrift, ...]
    reference_hit_rate: float | None
    live_hit_rate: float | None
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def drifted(self) -> bool:
        return bool(self.reasons)


def _clean(name: str, values: Sequence[float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size < 2:
        raise DataValidationError(name, int(arr.size), "drift needs at least 2 finite values per side")
    return arr


def psi(reference: Sequence[float] | np.ndarray, live: Sequence[float] | np.ndarray, bins: int = 10) -> float:
    """Population stability index of ``live`` against ``reference``'s quantile bins (0 = same distribution)."""
    ref, cur = _clean("reference", reference), _clean("live", live)
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)))
    if edges.size < 2:  # a constant reference: one bin for its value, one for anything else
        same = float(np.mean(cur == edges[0]))
        p, q = np.array([1.0, EPS]), np.array([max(same, EPS), max(1 - same, EPS)])
        return float(np.sum((q - p) * np.log(q / p)))
    inner = edges[1:-1]
    p = np.bincount(np.searchsorted(inner, ref, side="right"), minlength=edges.size - 1) / ref.size
    q = np.bincount(np.searchsorted(inner, cur, side="right"), minlength=edges.size - 1) / cur.size
    p, q = np.maximum(p, EPS), np.maximum(q, EPS)
    return float(np.sum((q - p) * np.log(q / p)))


def ks(reference: Sequence[float] | np.ndarray, live: Sequence[float] | np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs."""
    ref, cur = np.sort(_clean("reference", reference)), np.sort(_clean("live", live))
    grid = np.concatenate([ref, cur])
    cdf_ref = np.searchsorted(ref, grid, side="right") / ref.size
    cdf_cur = np.searchsorted(cur, grid, side="right") / cur.size
    return float(np.max(np.abs(cdf_ref - cdf_cur)))


def column_drift(name: str, reference: Sequence[float] | np.ndarray, live: Sequence[float] | np.ndarray,
                 settings: DriftSettings) -> ColumnDrift:
    p, k = psi(reference, live, settings.psi_bins), ks(reference, live)
    return ColumnDrift(name, round(p, 6), round(k, 6), p > settings.psi_threshold or k > settings.ks_threshold)


def hit_rate(signals: Sequence[float] | np.ndarray, returns: Sequence[float] | np.ndarray) -> float | None:
    """Share of non-flat signals whose side matches the realised return's sign (None without any)."""
    s, r = np.asarray(signals, dtype=float), np.asarray(returns, dtype=float)
    if s.shape != r.shape:
        raise DataValidationError("returns", r.shape, f"must align with signals {s.shape}")
    keep = np.isfinite(s) & np.isfinite(r) & (s != 0) & (r != 0)
    if not keep.any():
        return None
    return float(np.mean(np.sign(s[keep]) == np.sign(r[keep])))


def detect(reference: Mapping[str, Sequence[float] | np.ndarray], live: Mapping[str, Sequence[float] | np.ndarray],
           settings: DriftSettings, *, reference_hit_rate: float | None = None,
           live_signals: Sequence[float] | None = None, live_returns: Sequence[float] | None = None) -> DriftReport:
    """Drift of every column of ``reference`` (features and ``prediction``) and the live hit rate's decay."""
    missing = sorted(set(reference) - set(live))
    if missing:
        raise DataValidationError("live", missing, "columns of the reference are missing from the live data")
    cols = tuple(column_drift(n, reference[n], live[n], settings) for n in sorted(reference))
    reasons = [f"{c.name}: PSI {c.psi:.3f} (> {settings.psi_threshold}) or KS {c.ks:.3f} (> {settings.ks_threshold})"
               for c in cols if c.drifted]
    live_hr = None
    if live_signals is not None and live_returns is not None:
        live_hr = hit_rate(live_signals, live_returns)
        if (live_hr is not None and reference_hit_rate is not None
                and reference_hit_rate - live_hr > settings.max_hit_rate_decay):
            reasons.append(f"hit rate {live_hr:.3f} decayed from {reference_hit_rate:.3f} "
                           f"(> {settings.max_hit_rate_decay})")
    return DriftReport(cols, reference_hit_rate, live_hr, tuple(reasons))
