"""Drift of live data against the training set: PSI and KS per feature and of the predictions; performance decay.

Pure functions over arrays (no Spark, no registry): the caller loads the champion's training
features and predictions (the reference) and the recent live ones. A column drifts when its
population stability index (PSI, over the reference's deciles) or its two-sample Kolmogorov-Smirnov
statistic passes its threshold; the predictions are checked the same way. Performance decay
compares the live hit rate of the signals (signal side vs the realised return's sign) with the one
measured on the training set's test segment.

Thresholds are calibrated on the reference itself (:func:`calibrate`): real features move from
window to window far more than sampling noise (volatility regimes; ``atr_14`` is in price units),
so fixed rules of thumb flag every real day. The null of each statistic is measured between the
reference and contiguous blocks of the live window's length drawn from within the reference (each
block left out of the reference it is compared with, as the live window is), and a column's
threshold is ``max(floor, null quantile)``: the floors of :class:`cryptolake.settings.DriftSettings`
(PSI 0.2, the usual "significant shift" rule of thumb; KS 0.1, far above sampling noise on
thousands of bars) and the ``drift.null_quantile`` of the null. Without a calibration the floors
alone apply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from cryptolake.errors import DataValidationError
from cryptolake.settings import DriftSettings

EPS = 1e-4  # floor of a bin's share, so an empty bin gives a large but finite PSI


@dataclass(frozen=True)
class Threshold:
    """A column's drift thresholds: ``max(floor, null quantile)``, and the null behind them (0 blocks: floors)."""

    psi: float
    ks: float
    psi_null: float | None = None  # the null's quantile before the floor (None: not calibrated)
    ks_null: float | None = None
    blocks: int = 0
    quantile: float | None = None

    @classmethod
    def floors(cls, settings: DriftSettings) -> Threshold:
        return cls(settings.psi_threshold, settings.ks_threshold)

    def why(self, stat: str, value: float) -> str:
        """``PSI 0.410 > calibrated 0.330 (null q0.99 over 365 blocks)``, or ``> floor 0.200`` when the floor rules."""
        limit, null = (self.psi, self.psi_null) if stat == "PSI" else (self.ks, self.ks_null)
        if null is not None and null >= limit:
            return f"{stat} {value:.3f} > calibrated {limit:.3f} (null q{self.quantile:g} over {self.blocks} blocks)"
        return f"{stat} {value:.3f} > floor {limit:.3f}"


@dataclass(frozen=True)
class ColumnDrift:
    """PSI and KS of one column, the thresholds they were judged by, and whether either passes its threshold."""

    name: str
    psi: float
    ks: float
    drifted: bool
    psi_threshold: float = 0.0
    ks_threshold: float = 0.0
    null_blocks: int = 0
    reason: str = ""


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


class _Reference:
    """A reference sample prepared once (sorted, quantile bins and their shares) for many PSI/KS comparisons."""

    def __init__(self, values: np.ndarray, bins: int) -> None:
        self.sorted = np.sort(values)
        self.n = values.size
        edges = np.unique(np.quantile(self.sorted, np.linspace(0, 1, bins + 1)))
        self.constant = edges.size < 2
        self.edges = edges
        self.inner = edges[1:-1]
        shares = np.searchsorted(self.inner, self.sorted, side="right")
        self.counts = np.bincount(shares, minlength=max(edges.size - 1, 1))

    def psi(self, cur: np.ndarray) -> float:
        """PSI of ``cur`` against this reference's bins."""
        if self.constant:  # a constant reference: one bin for its value, one for anything else
            same = float(np.mean(cur == self.edges[0]))
            p, q = np.array([1.0, EPS]), np.array([max(same, EPS), max(1 - same, EPS)])
            return float(np.sum((q - p) * np.log(q / p)))
        live = np.bincount(np.searchsorted(self.inner, cur, side="right"), minlength=self.counts.size)
        p, q = np.maximum(self.counts / self.n, EPS), np.maximum(live / cur.size, EPS)
        return float(np.sum((q - p) * np.log(q / p)))

    def ks(self, cur: np.ndarray) -> float:
        """KS of ``cur``: the CDF gap's sup is reached at ``cur``'s points (right values or left limits)."""
        cur = np.sort(cur)
        m = cur.size
        gap = 0.0
        for side in ("left", "right"):
            f_ref = np.searchsorted(self.sorted, cur, side=side) / self.n  # type: ignore[call-overload]
            f_cur = np.searchsorted(cur, cur, side=side) / m  # type: ignore[call-overload]
            gap = max(gap, float(np.max(np.abs(f_ref - f_cur))))
        return gap


    def null(self, values: np.ndarray, starts: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
        """PSI and KS of every block ``values[s:s + window]`` left out of this reference (``values``), vectorised."""
        blocks = np.sort(np.lib.stride_tricks.sliding_window_view(values, window)[starts], axis=1)
        b, m = blocks.shape
        if self.constant:
            return np.array([self.psi(row) for row in blocks]), np.zeros(b)
        k = self.counts.size
        idx = np.searchsorted(self.inner, blocks, side="right") + k * np.arange(b)[:, None]
        live = np.bincount(idx.ravel(), minlength=b * k).reshape(b, k)
        ref = self.counts[None, :] - live
        p = np.maximum(ref / ref.sum(axis=1, keepdims=True), EPS)
        q = np.maximum(live / m, EPS)
        null_psi = np.sum((q - p) * np.log(q / p), axis=1)
        # ranks within each sorted block: a value's left rank is where its run of ties starts, its right where it ends
        pos = np.broadcast_to(np.arange(m), (b, m))
        new_run = np.ones((b, m), dtype=bool)
        new_run[:, 1:] = blocks[:, 1:] != blocks[:, :-1]
        left = np.maximum.accumulate(np.where(new_run, pos, 0), axis=1)
        run_end = np.ones((b, m), dtype=bool)
        run_end[:, :-1] = new_run[:, 1:]
        right = np.minimum.accumulate(np.where(run_end, pos + 1, m)[:, ::-1], axis=1)[:, ::-1]
        f_left = np.searchsorted(self.sorted, blocks.ravel(), side="left").reshape(b, m) / self.n
        f_right = np.searchsorted(self.sorted, blocks.ravel(), side="right").reshape(b, m) / self.n
        gap = np.maximum(np.abs(f_left - left / m).max(axis=1), np.abs(f_right - right / m).max(axis=1))
        # left out: F_rest = (n F_ref - m F_cur) / (n - m), so F_rest - F_cur = n / (n - m) (F_ref - F_cur)
        return null_psi, gap * self.n / (self.n - m)


def psi(reference: Sequence[float] | np.ndarray, live: Sequence[float] | np.ndarray, bins: int = 10) -> float:
    """Population stability index of ``live`` against ``reference``'s quantile bins (0 = same distribution)."""
    ref, cur = _clean("reference", reference), _clean("live", live)
    return _Reference(ref, bins).psi(cur)


def ks(reference: Sequence[float] | np.ndarray, live: Sequence[float] | np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs."""
    ref, cur = _clean("reference", reference), _clean("live", live)
    return _Reference(ref, 2).ks(cur)


def block_starts(n: int, window: int, blocks: int) -> np.ndarray:
    """Starts of up to ``blocks`` evenly spaced contiguous blocks of ``window`` rows in ``n`` (none if they do not fit).

    At most one block per ``window`` rows when that gives enough of them (non-overlapping);
    overlapping when the reference is too short for ``blocks`` disjoint ones.
    """
    if window < 2 or n - window < 2:  # a block needs 2 rows, and so does the reference left without it
        return np.zeros(0, dtype=int)
    count = min(blocks, n - window + 1)
    return np.unique(np.linspace(0, n - window, count).round().astype(int))


def calibrate(reference: Mapping[str, Sequence[float] | np.ndarray], windows: Mapping[str, int],
              settings: DriftSettings) -> dict[str, Threshold]:
    """Per column, ``max(floor, null quantile)`` of PSI and KS between the reference and its own blocks.

    ``reference``'s rows are in time order (rows are autocorrelated, so the null is drawn from
    contiguous blocks, each of the live window's length for that column, ``windows[name]``, each
    left out of the reference it is compared with). A column too short for a block keeps the floors.
    """
    out: dict[str, Threshold] = {}
    for name in sorted(reference):
        values = _clean(f"reference.{name}", reference[name])
        window = int(windows.get(name, 0))
        starts = block_starts(values.size, window, settings.null_blocks)
        if starts.size == 0:
            out[name] = Threshold.floors(settings)
            continue
        null_psi, null_ks = _Reference(values, settings.psi_bins).null(values, starts, window)
        q = settings.null_quantile
        p_null, k_null = float(np.quantile(null_psi, q)), float(np.quantile(null_ks, q))
        out[name] = Threshold(round(max(settings.psi_threshold, p_null), 6),
                              round(max(settings.ks_threshold, k_null), 6), round(p_null, 6), round(k_null, 6),
                              int(starts.size), q)
    return out


def column_drift(name: str, reference: Sequence[float] | np.ndarray, live: Sequence[float] | np.ndarray,
                 settings: DriftSettings, threshold: Threshold | None = None) -> ColumnDrift:
    """PSI and KS of one column against its threshold (the floors of ``settings`` without a calibration)."""
    t = threshold or Threshold.floors(settings)
    p, k = psi(reference, live, settings.psi_bins), ks(reference, live)
    why = [t.why(stat, v) for stat, v, limit in (("PSI", p, t.psi), ("KS", k, t.ks)) if v > limit]
    return ColumnDrift(name, round(p, 6), round(k, 6), bool(why), t.psi, t.ks, t.blocks, "; ".join(why))


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
           settings: DriftSettings, *, thresholds: Mapping[str, Threshold] | None = None,
           reference_hit_rate: float | None = None, live_signals: Sequence[float] | None = None,
           live_returns: Sequence[float] | None = None) -> DriftReport:
    """Drift of every column of ``reference`` (features and ``prediction``) and the live hit rate's decay.

    ``thresholds`` per column come from :func:`calibrate`; a column without one is judged by the floors.
    The columns are drift only when at least ``settings.min_drifted_columns`` pass their thresholds
    (each column still says whether it did); hit-rate decay is drift on its own.
    """
    missing = sorted(set(reference) - set(live))
    if missing:
        raise DataValidationError("live", missing, "columns of the reference are missing from the live data")
    limits = thresholds or {}
    cols = tuple(column_drift(n, reference[n], live[n], settings, limits.get(n)) for n in sorted(reference))
    reasons = [f"{c.name}: {c.reason}" for c in cols if c.drifted]
    if len(reasons) < settings.min_drifted_columns:  # one column alone: within real noise (docs/operations.md)
        reasons = []
    live_hr = None
    if live_signals is not None and live_returns is not None:
        live_hr = hit_rate(live_signals, live_returns)
        if (live_hr is not None and reference_hit_rate is not None
                and reference_hit_rate - live_hr > settings.max_hit_rate_decay):
            reasons.append(f"hit rate {live_hr:.3f} decayed from {reference_hit_rate:.3f} "
                           f"(> {settings.max_hit_rate_decay})")
    return DriftReport(cols, reference_hit_rate, live_hr, tuple(reasons))
