"""Hyperparameter search: Optuna TPE with median pruning on fold metrics, trials evaluated on Dask.

The study lives in a local SQLite database under the state dir (``<state_dir>/optuna/studies.db``)
so a search can be inspected (``optuna-dashboard``) or resumed. Trials are asked in fixed-size
batches from the seeded TPE sampler, evaluated in parallel on the Dask workers
(:func:`cryptolake.compute.dask_client`), then told back in trial order. Because the batch size
does not depend on the number of workers, the sampler sees the same history and suggests the
same parameters with 1 or 2 workers, and every fit is deterministic for its seed: the same
study gives the same best parameters whatever the worker count; only the wall time changes.

The objective is the mean validation log loss over the walk-forward folds: the test segments are
never looked at while tuning. Median pruning: after each fold a trial stops if its running mean
is worse than the median of the earlier batches' trials at that fold (decided with earlier
batches only, which keeps pruning deterministic too); a pruned trial is told as PRUNED with the
intermediate values it reported.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np

from cryptolake.logs import get_logger
from cryptolake.settings import Settings
from cryptolake.types import TIMEFRAME_MS
from models.dataset import TrainingSet
from models.evaluate import log_loss
from models.sequence import SequenceConfig, SequenceModel
from models.walkforward import FoldTask, purge_bars, walk_forward_tasks

log = get_logger(__name__)

BATCH = 4  # trials asked per round: fixed, so 1 and 2 workers see the same sampler history


@dataclass(frozen=True)
class SearchResult:
    """The best trial of a study and what it cost."""

    study: str
    storage: str
    metric: str
    best_params: dict[str, Any]
    best_value: float
    trials: int
    pruned: int
    seconds: float
    workers: int


def suggest(trial: Any) -> dict[str, Any]:
    """The search space shared by every net."""
    return {
        "hidden_size": trial.suggest_categorical("hidden_size", [8, 16, 32, 64]),
        "num_layers": trial.suggest_int("num_layers", 1, 2),
        "dropout": trial.suggest_float("dropout", 0.0, 0.3),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
    }


def evaluate(dataset: TrainingSet, config: SequenceConfig, tasks: list[FoldTask],
             medians: list[float | None]) -> tuple[list[float], bool]:
    """Validation log loss per fold (runs on a worker); stops early when the running mean is worse than the median."""
    values: list[float] = []
    for task, median in zip(tasks, medians, strict=True):
        report = SequenceModel(config).fit(dataset, fold=task.fold)
        valid = report.predictions[report.predictions["segment"] == "valid"]
        values.append(log_loss(valid["label"].to_numpy(), valid[config.net].to_numpy()))
        if median is not None and float(np.mean(values)) > median:
            return values, True
    return values, False


def _medians(history: list[list[float]], n_folds: int, warmup: int) -> list[float | None]:
    """Per fold, the median running mean of earlier trials that reached it (None before ``warmup`` trials)."""
    out: list[float | None] = []
    for k in range(n_folds):
        reached = [float(np.mean(v[: k + 1])) for v in history if len(v) > k]
        out.append(float(np.median(reached)) if len(reached) >= warmup and k < n_folds - 1 else None)
    return out


def run_search(dataset: TrainingSet, base: SequenceConfig, settings: Settings, *, trials: int, n_folds: int,
               workers: int, study_name: str | None = None, console: Any = None) -> SearchResult:
    """Search ``trials`` configurations of ``base.net`` (see the module); the study is recreated by name."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder = settings.paths.state_dir / "optuna"
    folder.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{folder / 'studies.db'}"
    name = study_name or f"{base.net}-seed{base.seed}-{base.config_hash()[:10]}"
    with contextlib.suppress(KeyError):
        optuna.delete_study(study_name=name, storage=storage)
    study = optuna.create_study(study_name=name, storage=storage, direction="minimize",
                                sampler=optuna.samplers.TPESampler(seed=base.seed, n_startup_trials=min(8, trials)))
    frame_ts = dataset.frame["ts"]
    bar = timedelta(milliseconds=max(TIMEFRAME_MS[t] for t in set(dataset.frame["timeframe"])))
    tasks = walk_forward_tasks(frame_ts, n_folds=n_folds, bar=bar,
                               gap_bars=purge_bars(base.window, base.horizon, base.embargo_bars))
    history: list[list[float]] = []
    pruned = 0
    started = time.perf_counter()

    def run_batch(evaluator: Any) -> None:
        nonlocal pruned
        done = 0
        while done < trials:
            asked = [study.ask() for _ in range(min(BATCH, trials - done))]
            medians = _medians(history, len(tasks), warmup=BATCH)
            configs = [base.model_copy(update=suggest(t)) for t in asked]
            outcomes = evaluator(configs, medians)
            for trial, (values, was_pruned) in zip(asked, outcomes, strict=True):
                for step, _value in enumerate(values):
                    trial.report(float(np.mean(values[: step + 1])), step)
                if was_pruned:
                    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                    pruned += 1
                else:
                    study.tell(trial, float(np.mean(values)))
                history.append(values)
            done += len(asked)
            if console is not None:
                console.print(f"  {base.net}: {done}/{trials} trials, best {study.best_value:.4f}")

    if workers == 0:
        run_batch(lambda configs, medians: [evaluate(dataset, c, tasks, medians) for c in configs])
    else:
        from cryptolake.compute import dask_client

        with dask_client(settings.dask, n_workers=workers) as client:
            data = client.scatter(dataset, broadcast=True)

            def on_dask(configs: list[SequenceConfig], medians: list[float | None]) -> list[Any]:
                futures = [client.submit(evaluate, data, c, tasks, medians, pure=False) for c in configs]
                return list(client.gather(futures))

            run_batch(on_dask)
    result = SearchResult(study=name, storage=storage, metric="valid_log_loss", best_params=dict(study.best_params),
                          best_value=float(study.best_value), trials=trials, pruned=pruned,
                          seconds=time.perf_counter() - started, workers=workers)
    log.info("search.done", extra={"study": name, "best": result.best_params, "value": result.best_value})
    return result
