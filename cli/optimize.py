"""`cryptolake optimize`: a parameter search of one strategy over the lake's bars (walk-forward on Dask)."""

from __future__ import annotations

import typer

from cryptolake.errors import CryptolakeError


def optimize(
    strategy: str = typer.Option(..., help="Strategy with a search space: breakout, swing or daytrade"),
    method: str = typer.Option("tpe", help="grid, random, tpe or nsga2 (Sharpe against max drawdown)"),
    trials: int = typer.Option(100, min=1, help="Trials per fold"),
    walk_forward: int = typer.Option(0, "--walk-forward", min=0, help="Walk-forward folds (0 = one in-sample run)"),
    symbols: str = typer.Option("", help="Comma-separated symbols (default: the configured market's)"),
    cash: float = typer.Option(10_000.0, help="Initial cash per symbol's account"),
    seed: int = typer.Option(7, help="Sampler seed (the search is reproducible)"),
    dask: bool = typer.Option(True, help="Run folds on Dask (LocalCluster, or CRYPTOLAKE__DASK__SCHEDULER_ADDRESS)"),
) -> None:
    """Search a strategy's parameters on the lake's bars (after `make main`); write the study and a tearsheet.

    Reports the walk-forward out-of-sample Sharpe, the deflated Sharpe ratio and the probability of
    backtest overfitting (CSCV) of the chosen parameters.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from cryptolake.settings import get_settings
    from pipeline.optimize import run_lake_optimize
    from trader.config import TraderConfig

    settings = get_settings()
    market = settings.market
    console = Console(stderr=True)
    try:
        config = TraderConfig(exchange=market.exchange, timeframe=market.timeframe, initial_cash=cash,
                              symbols=tuple(s.strip() for s in symbols.split(",") if s.strip()) or market.symbols,
                              price_decimals=8)
        with Progress(TextColumn("optimize"), BarColumn(), MofNCompleteColumn(), TextColumn("folds"),
                      TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task("folds", total=max(walk_forward, 1))
            run = run_lake_optimize(config, strategy, method=method, trials=trials, walk_forward=walk_forward,
                                    settings=settings, seed=seed, use_dask=dask,
                                    progress=lambda done, total: bar.update(task, completed=done, total=total))
    except (CryptolakeError, ValueError) as exc:
        console.print(f"[red]optimize failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    r = run.result
    table = Table(title=f"{strategy} {method}: {trials} trials x {max(walk_forward, 1)} folds on "
                        f"{', '.join(config.symbols)}")
    table.add_column("fold")
    table.add_column("best parameters")
    table.add_column("in-sample Sharpe", justify="right")
    table.add_column("out-of-sample Sharpe", justify="right")
    for f in r.folds:
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in f.best_params.items())
        table.add_row(str(f.fold), params, f"{f.best_in.sharpe:.3f}" if f.best_in else "-",
                      f"{f.best_out.sharpe:.3f}" if f.best_out else "-")
    Console().print(table)
    typer.echo(f"chosen: {r.chosen}")
    typer.echo(f"walk-forward out-of-sample Sharpe {r.walk_forward_sharpe:.3f}; "
               f"deflated Sharpe {r.deflated['dsr']:.3f} (PSR {r.deflated['psr']:.3f}); "
               f"PBO {r.pbo:.3f} over {r.pbo_configs} configurations")
    typer.echo(f"study: {run.study_path}\ntearsheet: {run.tearsheet}\nsummary: {run.png}")
