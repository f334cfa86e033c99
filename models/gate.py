"""The champion gate: a challenger may trade only if it beats every naive baseline and the champion.

Scores are the mean of a configured out-of-sample metric over the walk-forward test folds (or
the one test segment of a single split). "Beats by a margin" means better by more than
``margin`` in the metric's own direction (higher AUC/accuracy, lower log loss/Brier). A model
that fails is registered with its decision but never promoted, and the scorer publishes nothing
for it; the reason names what it lost to and by how much.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from cryptolake.errors import DataValidationError

HIGHER_IS_BETTER: Mapping[str, bool] = {"auc": True, "accuracy": True, "f1": True, "log_loss": False,
                                        "brier": False}


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict with everything it compared."""

    passed: bool
    reason: str
    metric: str
    margin: float
    challenger: str
    score: float
    baselines: dict[str, float]
    champion: str | None
    champion_score: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def mean_metric(fold_metrics: Sequence[Mapping[str, Mapping[str, float]]], name: str, metric: str) -> float:
    """Mean of ``metric`` of model ``name`` over folds (each fold: model name -> metric dict)."""
    values = [float(fold[name][metric]) for fold in fold_metrics if name in fold]
    if not values:
        raise DataValidationError("model", name, f"has no {metric} in any fold")
    return float(np.nanmean(values))


def _beats(a: float, b: float, metric: str, margin: float) -> bool:
    if not np.isfinite(a):
        return False
    if not np.isfinite(b):
        return True
    return a - b > margin if HIGHER_IS_BETTER[metric] else b - a > margin


def decide(
    challenger: str,
    fold_metrics: Sequence[Mapping[str, Mapping[str, float]]],
    baselines: Sequence[str],
    *,
    metric: str,
    margin: float,
    champion: tuple[str, float] | None = None,
) -> GateDecision:
    """Whether ``challenger`` may become champion (see the module for the rule)."""
    if metric not in HIGHER_IS_BETTER:
        raise DataValidationError("gate_metric", metric, f"expected one of {sorted(HIGHER_IS_BETTER)}")
    if margin < 0:
        raise DataValidationError("gate_margin", margin, "must be >= 0")
    if not baselines:
        raise DataValidationError("baselines", [], "the gate needs at least one naive baseline")
    score = mean_metric(fold_metrics, challenger, metric)
    base = {b: mean_metric(fold_metrics, b, metric) for b in baselines}
    lost = [f"{b} ({metric} {v:.4f})" for b, v in base.items() if not _beats(score, v, metric, margin)]
    if champion is not None and not _beats(score, champion[1], metric, margin):
        lost.append(f"champion {champion[0]} ({metric} {champion[1]:.4f})")
    passed = not lost
    verb = "beats" if passed else "does not beat"
    who = ", ".join(lost) if lost else "every naive baseline" + (" and the champion" if champion else "")
    reason = f"{challenger} {metric} {score:.4f} {verb} {who} by more than {margin:g} out of sample"
    return GateDecision(passed=passed, reason=reason, metric=metric, margin=margin, challenger=challenger,
                        score=score, baselines=base, champion=champion[0] if champion else None,
                        champion_score=champion[1] if champion else None)
