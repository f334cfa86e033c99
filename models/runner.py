"""Walk-forward training of many models: every net on every fold, ensembles, leaderboard, gate, registry.

Each (net, fold) pair is one task; tasks run on Dask workers (:func:`cryptolake.compute.dask_client`)
or in this process (``workers=0``). A task fits one :class:`models.sequence.SequenceModel` on the
fold's segments (features chosen on the fold's training rows when a selection method is given)
and returns the fitted model with its out-of-sample predictions. Results are kept per fold; the
model of the last fold (the most recent data) is the one registered for each net, carrying every
fold's metrics, and the gate decides which may trade and which becomes champion.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cryptolake.errors import DataValidationError, ModelNotFoundError
from cryptolake.logs import get_logger
from cryptolake.settings import Settings
from cryptolake.types import TIMEFRAME_MS
from models.baselines import NAIVE_BASELINES
from models.dataset import KEY_COLUMNS, TrainingSet
from models.ensemble import add_ensembles
from models.gate import GateDecision, decide
from models.leaderboard import fold_table, leaderboard
from models.registry import ModelRegistry, RegistryEntry
from models.selection import select_features
from models.sequence import SequenceConfig, SequenceModel
from models.targets import make_labels
from models.walkforward import FoldTask, purge_bars, walk_forward_tasks
from models.windows import Standardiser, sort_series

log = get_logger(__name__)

Progress = Callable[[str, int, str], None]  # (net, fold index, event: "start" | "done")


@dataclass(frozen=True)
class RunPlan:
    """What to train: nets, folds, selection, and the speed knobs of the nets' config."""

    nets: tuple[str, ...]
    n_folds: int = 5
    select: str | None = None
    select_k: int = 8
    base: SequenceConfig = field(default_factory=SequenceConfig)
    expanding: bool = True


@dataclass
class TaskResult:
    net: str
    fold: int
    model: SequenceModel
    predictions: pd.DataFrame
    seconds: float
    selection: dict[str, Any] | None


@dataclass
class RunResult:
    """Everything a run produced (kept per fold)."""

    tasks: list[FoldTask]
    predictions: pd.DataFrame
    folds: pd.DataFrame
    board: pd.DataFrame
    models: dict[str, SequenceModel]
    selected_members: dict[int, str]
    gates: dict[str, GateDecision] = field(default_factory=dict)
    registered: dict[str, RegistryEntry] = field(default_factory=dict)
    champion: str | None = None


def fit_task(dataset: TrainingSet, config: SequenceConfig, task: FoldTask, select: str | None,
             select_k: int) -> TaskResult:
    """Fit one net on one fold (runs on a worker); selection sees the fold's training rows only."""
    import time

    started = time.perf_counter()
    selection = None
    if select is not None:
        frame = sort_series(dataset.frame)
        names = list(config.feature_columns)
        train = task.fold.train.contains(frame["ts"])
        labels = make_labels(frame, config.target, config.horizon, config.cost)
        values = frame[names].to_numpy(dtype=np.float64)
        rows = train & np.isfinite(values).all(axis=1) & np.isfinite(labels)
        x = Standardiser.fit(values[rows]).transform(values[rows])
        chosen = select_features(x, labels[rows], names, select, min(select_k, len(names)), config.seed)
        selection = chosen.as_dict()
        config = config.model_copy(update={"feature_columns": chosen.chosen})
        dataset = dataclasses.replace(dataset, extra={**dataset.extra, "feature_selection": selection})
    model = SequenceModel(config)
    report = model.fit(dataset, fold=task.fold)
    predictions = report.predictions.assign(fold=task.index)
    return TaskResult(net=config.net, fold=task.index, model=model, predictions=predictions,
                      seconds=time.perf_counter() - started, selection=selection)


def _merge(results: Sequence[TaskResult], nets: Sequence[str]) -> pd.DataFrame:
    """One frame per fold with every net's column (baselines from the first net: identical across nets)."""
    keys = [*KEY_COLUMNS, "fold", "segment"]
    frames = []
    for fold in sorted({r.fold for r in results}):
        mine = {r.net: r.predictions for r in results if r.fold == fold}
        base = mine[nets[0]].drop(columns=[n for n in nets if n != nets[0]], errors="ignore")
        for net in nets[1:]:
            base = base.merge(mine[net][[*keys, net]], on=keys, how="inner")
        frames.append(base)
    return pd.concat(frames, ignore_index=True)


def run_walk_forward(dataset: TrainingSet, plan: RunPlan, settings: Settings, *, workers: int = 0,
                     progress: Progress | None = None) -> RunResult:
    """Train every net of ``plan`` on every fold; return predictions, fold metrics and the leaderboard."""
    if not plan.nets:
        raise DataValidationError("model", [], "name at least one model")
    frame = sort_series(dataset.frame)
    timeframes = sorted(set(frame["timeframe"]))
    bar_ms = max(TIMEFRAME_MS[t] for t in timeframes)
    base = plan.base
    gap = purge_bars(base.window, base.horizon, base.embargo_bars)
    from datetime import timedelta

    tasks = walk_forward_tasks(frame["ts"], n_folds=plan.n_folds, bar=timedelta(milliseconds=bar_ms), gap_bars=gap,
                               valid_fraction=0.2, expanding=plan.expanding)
    configs = {net: base.model_copy(update={"net": net}) for net in plan.nets}
    pairs = [(net, task) for task in tasks for net in plan.nets]
    results: list[TaskResult] = []
    if workers == 0:
        for net, task in pairs:
            if progress:
                progress(net, task.index, "start")
            results.append(fit_task(dataset, configs[net], task, plan.select, plan.select_k))
            if progress:
                progress(net, task.index, "done")
    else:
        from distributed import as_completed

        from cryptolake.compute import dask_client

        with dask_client(settings.dask, n_workers=workers) as client:
            data = client.scatter(dataset, broadcast=True)
            futures = {client.submit(fit_task, data, configs[net], task, plan.select, plan.select_k,
                                     key=f"fit-{net}-{task.index}", pure=False): (net, task) for net, task in pairs}
            for future in as_completed(list(futures)):
                result = future.result()
                results.append(result)
                if progress:
                    progress(result.net, result.fold, "done")
    results.sort(key=lambda r: (r.fold, plan.nets.index(r.net)))
    merged = _merge(results, plan.nets)
    selected: dict[int, str] = {}
    if len(plan.nets) >= 2:
        parts = []
        for fold in sorted(int(f) for f in merged["fold"].unique()):
            with_ens, chosen = add_ensembles(merged[merged["fold"] == fold], plan.nets, base.seed)
            parts.append(with_ens)
            selected[fold] = chosen
        merged = pd.concat(parts, ignore_index=True)
    bars_per_year = 365.25 * 24 * 3600 * 1000 / bar_ms
    cost = settings.models.cost_bps / 10_000
    folds = fold_table(merged, base.threshold)
    board = leaderboard(merged, threshold=base.threshold, cost=cost, bars_per_year=bars_per_year)
    last = max(r.fold for r in results)
    models = {r.net: r.model for r in results if r.fold == last}
    return RunResult(tasks=tasks, predictions=merged, folds=folds, board=board, models=models,
                     selected_members=selected)


def fold_metrics_of(folds: pd.DataFrame) -> list[dict[str, dict[str, float]]]:
    """The fold table as one {model: metrics} dict per fold (what the gate and the registry keep)."""
    out: list[dict[str, dict[str, float]]] = []
    for fold in sorted(folds["fold"].unique()):
        part = folds[folds["fold"] == fold]
        out.append({str(r["model"]): {str(k): float(v) for k, v in r.items() if k != "model"}
                    for r in part.to_dict(orient="records")})
    return out


def champion_score(registry: ModelRegistry, as_of: Any, metric: str) -> tuple[str, float] | None:
    """The current champion's recorded out-of-sample gate score (None without a champion or a score)."""
    try:
        entry = registry.champion(as_of)
    except ModelNotFoundError:
        return None
    gate = entry.gate or {}
    if gate.get("metric") == metric and gate.get("score") is not None:
        return entry.version, float(gate["score"])
    return None


def register_run(result: RunResult, registry: ModelRegistry, settings: Settings) -> RunResult:
    """Register every net's last-fold model with its fold metrics and gate; promote the best that passes."""
    metric, margin = settings.models.gate_metric, settings.models.gate_margin
    per_fold = fold_metrics_of(result.folds)
    baselines = [b for b in NAIVE_BASELINES if b in per_fold[0]]
    any_model = next(iter(result.models.values()))
    champion = champion_score(registry, any_model.trained_at, metric)
    for net, model in result.models.items():
        gate = decide(net, per_fold, baselines, metric=metric, margin=margin, champion=champion)
        result.gates[net] = gate
        model.with_fold_metrics([{name: fold[name] for name in (net, *baselines)} for fold in per_fold])
    passers = [n for n, g in result.gates.items() if g.passed]
    sign = 1 if metric in ("auc", "accuracy", "f1") else -1
    best = max(passers, key=lambda n: (sign * result.gates[n].score, n)) if passers else None
    for net, model in result.models.items():
        result.registered[net] = registry.register(model, promote=net == best, gate=result.gates[net].as_dict())
    result.champion = result.registered[best].version if best else None
    log.info("train.gate", extra={"champion": result.champion,
                                  "gates": {n: g.reason for n, g in result.gates.items()}})
    return result
