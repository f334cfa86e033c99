"""The PPO agent on the purged walk-forward folds: the supervised models' folds, metrics and gate.

:func:`run_ppo_walk_forward` fits one :class:`models.ppo.PpoModel` per fold of
:func:`models.walkforward.walk_forward_tasks` (the same folds ``cryptolake train`` cuts for the
nets: gap = max(window, 1 + embargo) bars), merges the out-of-sample predictions with the naive
baselines (fold table and leaderboard of :mod:`models.leaderboard`: accuracy, AUC, log loss,
Brier, calibration, the long/flat proxy after costs, deflated Sharpe) and keeps, per fold, the
backtest of the greedy policy under the node's rules against buy-and-hold, a random policy and
flat. :func:`register_ppo` registers the last fold's model with every fold's metrics and the
champion gate's decision.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import pandas as pd

from cryptolake.errors import DataValidationError
from cryptolake.logs import get_logger
from cryptolake.settings import Settings
from cryptolake.types import TIMEFRAME_MS
from models.baselines import NAIVE_BASELINES
from models.dataset import TrainingSet
from models.gate import GateDecision, decide
from models.leaderboard import fold_table, leaderboard
from models.ppo import KIND, THRESHOLD, PpoConfig, PpoModel
from models.registry import ModelRegistry, RegistryEntry
from models.runner import champion_score, fold_metrics_of
from models.walkforward import FoldTask, walk_forward_tasks
from models.windows import sort_series

log = get_logger(__name__)

FoldProgress = Callable[[int, str], None]  # (fold index, "start" | "done")


@dataclass
class PpoRunResult:
    """Per fold: predictions, classification metrics, node-rule backtests and the fitted model."""

    tasks: list[FoldTask]
    predictions: pd.DataFrame
    folds: pd.DataFrame
    board: pd.DataFrame
    backtests: pd.DataFrame  # fold, segment, strategy, total_return, sharpe, max_drawdown, fills, ...
    models: dict[int, PpoModel]
    seconds: dict[int, float]
    gate: GateDecision | None = None
    registered: RegistryEntry | None = None
    extra: dict[str, object] = field(default_factory=dict)


def run_ppo_walk_forward(dataset: TrainingSet, bars: pd.DataFrame | None, config: PpoConfig, settings: Settings, *,
                         n_folds: int, only: set[int] | None = None, progress: FoldProgress | None = None
                         ) -> PpoRunResult:
    """Fit the agent on every fold (or the fold indices in ``only``) and report them as the nets are reported."""
    frame = sort_series(dataset.frame)
    bar = timedelta(milliseconds=max(TIMEFRAME_MS[t] for t in set(frame["timeframe"])))
    tasks = walk_forward_tasks(frame["ts"], n_folds=n_folds, bar=bar, gap_bars=config.gap_bars, valid_fraction=0.2)
    chosen = [t for t in tasks if only is None or t.index in only]
    if not chosen:
        raise DataValidationError("fold", sorted(only or ()), f"no such fold among {n_folds}")
    preds, tests, models, seconds = [], [], {}, {}
    for task in chosen:
        if progress:
            progress(task.index, "start")
        model = PpoModel(config)
        report = model.fit(dataset, fold=task.fold, bars=bars)
        preds.append(report.predictions.assign(fold=task.index))
        for segment, by_strategy in report.backtest.items():
            for strategy, metrics in by_strategy.items():
                tests.append({"fold": task.index, "segment": segment, "strategy": strategy, **metrics})
        models[task.index], seconds[task.index] = model, report.train_seconds
        log.info("ppo.fold", extra={"fold": task.name, "seconds": round(report.train_seconds, 1),
                                    "best_iteration": report.best_iteration, "stopped": report.stopped})
        if progress:
            progress(task.index, "done")
    predictions = pd.concat(preds, ignore_index=True)
    bars_per_year = 365.25 * 24 * 3600 / bar.total_seconds()
    cost = settings.models.cost_bps / 10_000
    return PpoRunResult(tasks=chosen, predictions=predictions, folds=fold_table(predictions, THRESHOLD),
                        board=leaderboard(predictions, threshold=THRESHOLD, cost=cost, bars_per_year=bars_per_year),
                        backtests=pd.DataFrame(tests), models=models, seconds=seconds)


def register_ppo(result: PpoRunResult, registry: ModelRegistry, settings: Settings) -> PpoRunResult:
    """Register the last fold's model with every fold's metrics; promote it only if it passes the gate."""
    metric, margin = settings.models.gate_metric, settings.models.gate_margin
    per_fold = fold_metrics_of(result.folds)
    baselines = [b for b in NAIVE_BASELINES if b in per_fold[0]]
    model = result.models[max(result.models)]
    champion = champion_score(registry, model.trained_at, metric)
    gate = decide(KIND, per_fold, baselines, metric=metric, margin=margin, champion=champion)
    model.with_fold_metrics([{name: fold[name] for name in (KIND, *baselines)} for fold in per_fold])
    result.gate = gate
    result.registered = registry.register(model, promote=gate.passed, gate=gate.as_dict())
    log.info("train.gate", extra={"model_version": result.registered.version, "gate": gate.reason})
    return result
