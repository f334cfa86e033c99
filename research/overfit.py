"""Probability of backtest overfitting by combinatorially symmetric cross-validation (CSCV).

Bailey, Borwein, Lopez de Prado and Zhu (2015). ``returns`` is a ``T x N`` matrix: the per-bar returns
of the ``N`` configurations a search tried, over the same ``T`` bars. The rows are cut into ``S``
contiguous blocks (``S`` even); for each of the ``C(S, S/2)`` ways to pick half of them as in-sample
(the rest out-of-sample), the configuration with the best in-sample Sharpe is located in the
out-of-sample ranking: ``w`` = its rank / (N + 1), ``logit = ln(w / (1 - w))``. PBO is the share of
splits where the in-sample winner ranks at or below the out-of-sample median (``logit <= 0``).

How to read it: PBO near 0 means the search's winner also tends to win on unseen data; 0.5 means
choosing by backtest is no better than a coin; above 0.5 the winner is worse than a typical
configuration out of sample (the search fits noise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np


@dataclass(frozen=True)
class PboResult:
    """PBO and the logits of every split (for the histogram), with the split count."""

    pbo: float
    logits: tuple[float, ...]
    n_splits: int
    n_configs: int


def _sharpe(x: np.ndarray) -> np.ndarray:
    sd = x.std(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = x.mean(axis=0) / sd
    return np.where(np.isfinite(s), s, -np.inf)


def pbo_cscv(returns: np.ndarray, n_blocks: int = 10) -> PboResult:
    """PBO of a ``T x N`` return matrix with ``n_blocks`` (even) blocks; ValueError on bad shapes."""
    m = np.asarray(returns, dtype=float)
    if m.ndim != 2 or m.shape[1] < 2:
        raise ValueError(f"returns must be T x N with N >= 2 configurations, got shape {m.shape}")
    if n_blocks < 2 or n_blocks % 2 or m.shape[0] < 2 * n_blocks:
        raise ValueError(f"n_blocks={n_blocks} must be even and at most T/2 (T={m.shape[0]})")
    blocks = np.array_split(np.arange(m.shape[0]), n_blocks)
    n = m.shape[1]
    logits = []
    for ins in combinations(range(n_blocks), n_blocks // 2):
        idx_in = np.concatenate([blocks[i] for i in ins])
        idx_out = np.concatenate([blocks[i] for i in range(n_blocks) if i not in ins])
        best = int(np.argmax(_sharpe(m[idx_in])))
        oos = _sharpe(m[idx_out])
        rank = float((oos < oos[best]).sum() + 1 + ((oos == oos[best]).sum() - 1) / 2)  # 1 = worst
        w = rank / (n + 1)
        logits.append(math.log(w / (1 - w)))
    arr = np.array(logits)
    return PboResult(float((arr <= 0).mean()), tuple(float(x) for x in arr), len(arr), n)
