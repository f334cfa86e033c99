"""``cryptolake ablation alt``: market-only against market + alternative data, same net, same folds.

    cryptolake ablation alt --folds 5          # the shared data folder beside the project

Real January 2022 data (BTC perpetual bars, news headlines, tweets): see :mod:`research.alt_ablation`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from cryptolake.settings import DEFAULT_SHARED_DATA

app = typer.Typer(help="Ablations: what a group of features adds, on the same folds", no_args_is_help=True)


@app.command("alt")
def alt(
    data: Path = typer.Option(DEFAULT_SHARED_DATA, envvar="CRYPTOLAKE_SHARED_DATA",
                              help="The shared data folder (see its README)"),
    folds: int = typer.Option(5, min=2, help="Purged walk-forward folds"),
    net: str = typer.Option("lstm", help="lstm, gru, transformer or tcn"),
    timeframe: str = typer.Option("5m", help="Bars the 1-minute candles are resampled to: 5m or 15m"),
) -> None:
    """Train the net on market features, then on market + alt features, on the same folds; print both."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from cli.train import NETS
    from cryptolake.settings import get_settings
    from research.alt_ablation import run_ablation

    if net not in NETS:
        raise typer.BadParameter(f"--net {net!r}: expected one of {list(NETS)}")
    if not (data / "README.md").exists():
        raise typer.BadParameter(f"--data {data}: not the shared data folder (no README.md)")
    console = Console()
    with Progress(TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bars:
        task = bars.add_task(f"{net} x 2 arms", total=2 * folds)
        result = run_ablation(data, get_settings(), folds=folds, net=net, timeframe=timeframe,
                              progress=lambda _n, _f, event: bars.advance(task) if event == "done" else None)
    console.print(f"{result.bars:,} real {timeframe} bars, {result.documents:,} documents; "
                  f"alt columns used: {', '.join(result.alt_columns)}")
    console.print(result.folds.round(4).to_string(index=False))
    console.print(result.summary().to_string())
