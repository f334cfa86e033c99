"""Portfolio allocation across instruments or strategy sleeves, with skfolio, and rebalancing with costs.

Why skfolio (not PyPortfolioOpt): it is maintained, scikit-learn shaped (fit on a returns frame, read
``weights_``), already a locked runtime dependency, and has every method below with the same
constraint arguments, plus Ledoit-Wolf shrinkage as a covariance estimator.

* :func:`target_weights`: weights from a returns frame (columns: instruments or strategies' equity
  returns) by ``equal``, ``inverse_vol``, ``min_variance``, ``max_sharpe`` (mean-variance, empirical
  or Ledoit-Wolf covariance), ``risk_parity`` (equal risk contributions) or ``hrp`` (hierarchical risk
  parity), under ``max_weight`` (inverse volatility capped by :func:`capped`) and long-only or
  long-short (``min_weight = -max_weight``, sum 1; mean-variance only, where short weights are well defined).
* :func:`rebalance`: a portfolio held between rebalances (weights drift with prices), rebalanced to
  its target on a schedule (every ``every_bars``) and/or when any weight drifts more than
  ``drift`` from its target, each rebalance paying ``cost_bps`` on the traded notional; targets are
  re-estimated at each rebalance from the trailing ``lookback`` returns only (point in time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cryptolake.errors import DataValidationError

Method = Literal["equal", "inverse_vol", "min_variance", "max_sharpe", "risk_parity", "hrp"]
METHODS: tuple[str, ...] = ("equal", "inverse_vol", "min_variance", "max_sharpe", "risk_parity", "hrp")
_LONG_SHORT = ("min_variance", "max_sharpe")


class AllocationConfig(BaseModel):
    """How weights are chosen and constrained, and when the portfolio is rebalanced (fractions: 0.4 = 40 %)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Method = Field(default="hrp", description="Allocation method")
    covariance: Literal["empirical", "ledoit_wolf"] = Field(default="ledoit_wolf",
                                                           description="Covariance estimator (risk-based methods)")
    risk_measure: Literal["variance", "standard_deviation"] = Field(
        default="variance", description="Risk of risk_parity and hrp (hrp bisects by it)")
    linkage: Literal["single", "ward", "average", "complete"] = Field(
        default="single", description="HRP's clustering linkage (single: Lopez de Prado's original)")
    max_weight: float = Field(default=1.0, gt=0.0, le=1.0, description="Largest absolute weight of one asset")
    long_only: bool = Field(default=True, description="False: weights in [-max_weight, max_weight], summing to 1")
    lookback: int = Field(default=500, ge=2, description="Trailing return rows each estimate uses")
    every_bars: int | None = Field(default=48, ge=1, description="Rebalance on this schedule; None = never")
    drift: float | None = Field(default=0.05, gt=0.0, description="Rebalance when a weight drifts this far")
    cost_bps: float = Field(default=15.0, ge=0.0, description="Cost per unit of traded notional (fee + slippage)")

    @model_validator(mode="after")
    def _check(self) -> AllocationConfig:
        if not self.long_only and self.method not in _LONG_SHORT:
            raise ValueError(f"method={self.method!r} is long-only; long-short needs one of {list(_LONG_SHORT)}")
        return self


def _estimator(cfg: AllocationConfig, n_assets: int) -> Any:
    from skfolio import RiskMeasure
    from skfolio.cluster import HierarchicalClustering, LinkageMethod
    from skfolio.moments import EmpiricalCovariance, LedoitWolf
    from skfolio.optimization import (
        EqualWeighted,
        HierarchicalRiskParity,
        InverseVolatility,
        MeanRisk,
        ObjectiveFunction,
        RiskBudgeting,
    )
    from skfolio.prior import EmpiricalPrior

    if cfg.max_weight * n_assets < 1.0 - 1e-12:
        raise DataValidationError("max_weight", cfg.max_weight, f"cannot sum to 1 over {n_assets} assets")
    prior = EmpiricalPrior(covariance_estimator=LedoitWolf() if cfg.covariance == "ledoit_wolf"
                           else EmpiricalCovariance())
    lo = 0.0 if cfg.long_only else -cfg.max_weight
    if cfg.method == "equal":
        return EqualWeighted()
    if cfg.method == "inverse_vol":
        return InverseVolatility(prior_estimator=prior)
    if cfg.method in ("min_variance", "max_sharpe"):
        objective = (ObjectiveFunction.MINIMIZE_RISK if cfg.method == "min_variance"
                     else ObjectiveFunction.MAXIMIZE_RATIO)
        return MeanRisk(objective_function=objective, risk_measure=RiskMeasure.VARIANCE, prior_estimator=prior,
                        min_weights=lo, max_weights=cfg.max_weight)
    risk = RiskMeasure.VARIANCE if cfg.risk_measure == "variance" else RiskMeasure.STANDARD_DEVIATION
    if cfg.method == "risk_parity":
        return RiskBudgeting(risk_measure=risk, prior_estimator=prior, min_weights=0.0, max_weights=cfg.max_weight)
    # skfolio's optimal cluster count has no gap to compare for two assets and fails; the count only labels
    # clusters (HRP's weights come from the linkage), so it is fixed there
    clustering = HierarchicalClustering(linkage_method=LinkageMethod(cfg.linkage),
                                        max_clusters=n_assets if n_assets == 2 else None)
    return HierarchicalRiskParity(risk_measure=risk, prior_estimator=prior,
                                  hierarchical_clustering_estimator=clustering, min_weights=0.0,
                                  max_weights=cfg.max_weight)


def target_weights(returns: pd.DataFrame, cfg: AllocationConfig) -> pd.Series:
    """Weights (index: the columns of ``returns``, summing to 1) fitted on ``returns`` (simple returns, rows in
    time order; rows with a missing value are dropped)."""
    clean = returns.dropna()
    if len(clean) < 2 or clean.shape[1] == 0:
        raise DataValidationError("returns", f"{len(clean)} complete rows x {clean.shape[1]} assets",
                                  "need at least 2 complete rows of at least one asset")
    if clean.shape[1] == 1:
        return pd.Series([1.0], index=clean.columns)
    model = _estimator(cfg, clean.shape[1]).fit(clean)
    w = pd.Series(np.asarray(model.weights_, dtype=float), index=clean.columns)
    w = w / w.sum()
    if cfg.method == "inverse_vol":  # skfolio's InverseVolatility takes no bounds
        w = capped(w, cfg.max_weight)
    return w


def capped(weights: pd.Series, cap: float) -> pd.Series:
    """Long-only ``weights`` (summing to 1) with none above ``cap``: the excess of those above it is shared by
    the rest in proportion to their weights, repeatedly, until none is above (water-filling)."""
    w = weights.astype(float).copy()
    fixed = pd.Series(False, index=w.index)
    while (w > cap + 1e-12).any():
        fixed |= w > cap + 1e-12
        w[fixed] = cap
        free = ~fixed
        rest = 1.0 - cap * int(fixed.sum())
        w[free] = w[free] / w[free].sum() * rest if w[free].sum() > 0 else rest / max(int(free.sum()), 1)
    return w


@dataclass(frozen=True)
class Rebalanced:
    """A rebalanced portfolio: equity, weights held after each row, the rebalances and what they cost."""

    equity: pd.Series
    weights: pd.DataFrame
    rebalances: pd.DataFrame  # ts, reason, turnover, cost
    costs: float


def rebalance(returns: pd.DataFrame, cfg: AllocationConfig, *, initial: float = 10_000.0) -> Rebalanced:
    """Hold the portfolio over ``returns`` (simple returns per row), rebalancing as ``cfg`` says (see module).

    The first target is estimated on the first ``lookback`` rows, which are not traded; each later
    target only on the ``lookback`` rows before the rebalance."""
    r = returns.fillna(0.0)
    if len(r) <= cfg.lookback:
        raise DataValidationError("returns", len(r), f"need more than lookback={cfg.lookback} rows")
    cols = list(r.columns)
    values = r.to_numpy(dtype=float)
    cost = cfg.cost_bps / 10_000
    equity = initial
    held = np.zeros(len(cols))
    target = np.zeros(len(cols))
    since = 0
    eq_out, w_out, events = [], [], []
    for i in range(cfg.lookback, len(r)):
        reason = None
        if i == cfg.lookback:
            reason = "initial"
        elif cfg.every_bars is not None and since >= cfg.every_bars:
            reason = "schedule"
        elif cfg.drift is not None and np.max(np.abs(held - target)) > cfg.drift:
            reason = "drift"
        if reason is not None:
            target = target_weights(returns.iloc[i - cfg.lookback : i], cfg).reindex(cols).fillna(0.0).to_numpy()
            turnover = float(np.abs(target - held).sum())
            paid = equity * turnover * cost
            equity -= paid
            held = target.copy()
            since = 0
            events.append((r.index[i], reason, turnover, paid))
        growth = held * (1.0 + values[i])
        gross = float(growth.sum()) + (1.0 - float(held.sum()))  # cash (1 - sum) earns nothing
        equity *= gross
        held = growth / gross if gross > 0 else held
        since += 1
        eq_out.append(equity)
        w_out.append(held.copy())
    idx = r.index[cfg.lookback:]
    reb = pd.DataFrame(events, columns=["ts", "reason", "turnover", "cost"])
    return Rebalanced(pd.Series(eq_out, index=idx), pd.DataFrame(w_out, index=idx, columns=cols), reb,
                      float(reb.cost.sum()) if len(reb) else 0.0)
