"""`cryptolake backtest`: any strategy over the lake's bars; prints the metrics and the report's path."""

from __future__ import annotations

import json
from typing import Any

import typer

from cli.options import parse_time
from cryptolake.errors import CryptolakeError


def _params(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--param {pair!r} must be field=value")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw  # a bare string
    return out


def _venues(pairs: list[str]) -> dict[str, tuple[str, ...]]:
    """``--venue kraken=ETH/USD,BTC/USD`` (repeatable) as TraderConfig.venues."""
    out: dict[str, tuple[str, ...]] = {}
    for pair in pairs:
        venue, sep, raw = pair.partition("=")
        symbols = tuple(s.strip() for s in raw.split(",") if s.strip())
        if not sep or not venue.strip() or not symbols:
            raise typer.BadParameter(f"--venue {pair!r} must be exchange=SYMBOL[,SYMBOL...]")
        out[venue.strip()] = out.get(venue.strip(), ()) + symbols
    return out


def backtest(
    strategy: str = typer.Option(..., help="Strategy: a registered name, module:Class or path/to/file.py:Class"),
    symbols: str = typer.Option("", help="Comma-separated symbols (default: the configured market's)"),
    start: str = typer.Option(None, help="First bar open time, ISO (default: the first bar in the lake)"),
    end: str = typer.Option(None, help="End, exclusive, ISO (default: after the last bar in the lake)"),
    param: list[str] = typer.Option([], "--param", "-p", help="Strategy config field=value (JSON value); repeat"),
    exchange: str = typer.Option("", help="Venue (default: the configured market's)"),
    venue: list[str] = typer.Option([], "--venue", help="Another venue of the same account, exchange=SYMBOL[,...]; "
                                    "repeat (one portfolio across venues, e.g. --strategy sleeves)"),
    timeframe: str = typer.Option("", help="Bar timeframe (default: the configured market's)"),
    cash: float = typer.Option(10_000.0, help="Initial cash of the account, in the quote currency"),
    model_version: str = typer.Option(None, help="Also feed this model's signals from gold.signals"),
    with_alt: bool = typer.Option(True, "--with-alt/--no-alt", help="Give a selector the lake's gold.alt_features "
                                  "rows of the run (point in time) where the lake has them"),
) -> None:
    """Backtest a strategy over the lake's bars (the embedded history after `make main`).

    The strategy runs in the same trading node as paper trading, over silver.bars; invalid and stale
    bars are skipped and counted. Prints the metrics table and writes an HTML report.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from cryptolake.settings import get_settings
    from pipeline.backtest import run_lake_backtest
    from trader.config import TraderConfig

    settings = get_settings()
    market = settings.market
    config_raw = {
        "exchange": exchange or market.exchange,
        "symbols": tuple(s.strip() for s in symbols.split(",") if s.strip()) or market.symbols,
        "venues": _venues(venue),
        "timeframe": timeframe or market.timeframe,
        "price_decimals": 8,
        "initial_cash": cash,
        "strategies": ({"kind": strategy, **_params(param)},),
    }
    console = Console(stderr=True)
    try:
        config = TraderConfig.model_validate(config_raw)
        with Progress(TextColumn("backtest"), BarColumn(), MofNCompleteColumn(), TextColumn("events"),
                      TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task("events", total=None)
            run = run_lake_backtest(config, start=parse_time(start, "start"), end=parse_time(end, "end"),
                                    model_version=model_version, settings=settings, alt=with_alt,
                                    progress=lambda done, total: bar.update(task, completed=done, total=total))
    except (CryptolakeError, ValueError) as exc:
        console.print(f"[red]backtest failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    result = run.result
    traded = ", ".join(f"{ex}:{sym}" for ex, sym in config.markets) if config.venues else ", ".join(config.symbols)
    table = Table(title=f"{strategy} on {traded}: {run.start:%Y-%m-%d} to {run.end:%Y-%m-%d}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.metrics.items():
        table.add_row(key, f"{value:,.4f}" if isinstance(value, float) else str(value))
    table.add_row("bars", f"{run.bars:,}")
    table.add_row("skipped bars", str(result.stats.get("skipped_bars", 0)))
    Console().print(table)
    typer.echo(f"alt data: {run.alt.get('status')} ({run.alt.get('detail')})")
    typer.echo(f"report: {run.report_path}")
    typer.echo(f"tearsheet: {run.tearsheet} (summary {run.tearsheet.with_suffix('.png')})")
    if run.sleeves is not None:
        typer.echo(f"sleeves: {run.sleeves} (weights and PnL per sleeve over time)")
