"""``cryptolake`` command line. Each sub-command group lives in its own module.

Heavy imports (Spark, torch, ccxt) happen inside the commands, so ``--help`` is instant.
"""

from __future__ import annotations

import typer

from cli import (
    ablation,
    altdata,
    backtest,
    connect,
    doctor,
    exchange,
    monitor,
    optimize,
    run,
    serve,
    sql,
    stack,
    statsd_bridge,
    stream,
    trade,
    train,
    up,
)
from cryptolake.logs import configure_logging
from cryptolake.settings import get_settings, settings_table

app = typer.Typer(
    name="cryptolake",
    help="ML-driven crypto trading on a real lakehouse (Kafka -> Spark/Delta -> DuckDB -> PyTorch -> trader).",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(stack.app, name="stack")
app.add_typer(exchange.app, name="exchange")
app.add_typer(altdata.app, name="altdata")
app.command("doctor")(doctor.doctor)
app.command("sql")(sql.sql)
app.command("backtest")(backtest.backtest)
app.command("optimize")(optimize.optimize)
app.add_typer(run.app, name="run")
app.command("serve")(serve.serve)
app.command("monitor")(monitor.monitor)
app.command("statsd-bridge")(statsd_bridge.statsd_bridge)
app.add_typer(serve.users_app, name="users")
app.command("train")(train.train)
app.add_typer(trade.app, name="trade")
app.add_typer(ablation.app, name="ablation")
app.add_typer(connect.app, name="connect")
app.command("up")(up.up)
app.command("down")(up.down)
app.command("status")(up.status)
app.command("logs")(up.logs)
app.add_typer(stream.app, name="stream")


@app.callback()
def _root(log_level: str = typer.Option(None, help="Override CRYPTOLAKE__LOG_LEVEL")) -> None:
    configure_logging(log_level or get_settings().log_level)


@app.command("settings")
def show_settings(markdown: bool = typer.Option(False, help="Print as a Markdown table")) -> None:
    """List every setting, its environment variable and its current value."""
    from trader.config import TraderSettings

    # Every settings model of the project: the core (alternative data included) and the trader's.
    rows = [*settings_table(get_settings()), *settings_table(TraderSettings(), "CRYPTOLAKE__TRADER__")]
    if markdown:
        typer.echo("| Environment variable | Default | Description |\n|---|---|---|")
        for env, value, desc in rows:
            typer.echo(f"| `{env}` | `{value}` | {desc} |")
    else:
        for env, value, desc in rows:
            typer.echo(f"{env}={value}    # {desc}")


if __name__ == "__main__":
    app()
