"""`cryptolake stream`: the continuous landing, features and scorer processes (run until SIGTERM)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

import typer

from cryptolake.errors import CryptolakeError

app = typer.Typer(help="Continuous Structured Streaming processes: land, features, score.", no_args_is_help=True)


Start = Callable[[threading.Event, Any, Callable[[], None]], None]


def _run(start: Start, metrics_port: int | None, what: str) -> None:
    """Install the stop handlers first, run until stopped; a failure exits 1.

    ``/metrics`` is served once ``start`` reports its queries running, so a supervisor's readiness
    check (GET /metrics) passes only when the driver really streams, not while the JVM starts.
    """
    from pipeline.stream_metrics import StreamMetrics
    from spark_jobs.session import stop_spark

    stop = threading.Event()  # first: a SIGTERM during start-up still ends in a clean stop
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    metrics = StreamMetrics()

    def started() -> None:
        if metrics_port is not None:
            metrics.serve(metrics_port)

    try:
        start(stop, metrics, started)
    except CryptolakeError as exc:
        typer.echo(f"stream {what} stopped on an error: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        metrics.close()
        stop_spark()
    typer.echo(f"stream {what}: stopped")


@app.command("land")
def land(
    topic: list[str] = typer.Option(..., "--topic", "-t", help="Kafka topic to land (repeat for several)"),
    trigger_seconds: float = typer.Option(1.0, min=0.1, help="Processing-time trigger interval"),
    max_offsets_per_trigger: int = typer.Option(None, help="Cap on records per micro-batch (default: all new)"),
    metrics_port: int = typer.Option(None, help="Serve Prometheus /metrics on 127.0.0.1:PORT"),
) -> None:
    """Land topics into their bronze tables continuously, exactly once, bad records to quarantine.

    One Spark driver, one query per topic, each with the batch landing's checkpoint and Delta txn ids.
    Runs until SIGTERM / Ctrl-C, then stops each query after its current micro-batch and exits 0.
    """
    from cryptolake.settings import get_settings
    from pipeline.stream import landing_queries, run_queries

    def start(stop: threading.Event, metrics: Any, started: Callable[[], None]) -> None:
        settings = get_settings()
        running = landing_queries(topic, settings, trigger_seconds=trigger_seconds, metrics=metrics,
                                  max_offsets_per_trigger=max_offsets_per_trigger)
        started()
        run_queries(running, stop)

    _run(start, metrics_port, "land")


@app.command("features")
def features(
    trigger_seconds: float = typer.Option(1.0, min=0.1, help="Processing-time trigger interval"),
    land: list[str] = typer.Option([], "--land", help="Also land this topic in the same driver (repeat)"),
    metrics_port: int = typer.Option(None, help="Serve Prometheus /metrics on 127.0.0.1:PORT"),
) -> None:
    """Update silver.bars and gold.features at each bar close from the new bronze candles (MERGE, exactly once).

    ``--land market.ohlcv`` runs the landing query in the same Spark driver (one JVM instead of two).
    Runs until SIGTERM / Ctrl-C, then stops each query after its current micro-batch and exits 0.
    """
    from cryptolake.settings import get_settings
    from pipeline.stream import features_queries, landing_queries, run_queries

    def start(stop: threading.Event, metrics: Any, started: Callable[[], None]) -> None:
        settings = get_settings()
        running = landing_queries(land, settings, trigger_seconds=trigger_seconds, metrics=metrics) if land else []
        running += features_queries(settings, trigger_seconds=trigger_seconds, metrics=metrics)
        started()
        run_queries(running, stop)

    _run(start, metrics_port, "features")


@app.command("score")
def score(
    model_version: str = typer.Option("champion", help="Model version to score with, or 'champion'"),
    registry_dir: str = typer.Option(None, help="Model registry folder (default: the configured market's)"),
    trigger_seconds: float = typer.Option(1.0, min=0.1, help="Processing-time trigger interval"),
    features: bool = typer.Option(False, "--features/--no-features",
                                  help="Also run the incremental silver+gold query in the same driver"),
    land: list[str] = typer.Option([], "--land", help="Also land this topic in the same driver (repeat)"),
    metrics_port: int = typer.Option(None, help="Serve Prometheus /metrics on 127.0.0.1:PORT"),
) -> None:
    """Score new gold feature rows continuously: one signal per bar to Kafka and gold.signals, exactly once.

    The batch scorer's checkpoint (one per model version) and MERGE on signal_id; a re-published signal
    has the same id (consumers skip it). A model that failed the champion gate publishes nothing.
    Runs until SIGTERM / Ctrl-C, then stops each query after its current micro-batch and exits 0.
    """
    from cryptolake.settings import get_settings
    from pipeline.stream import features_queries, landing_queries, resolve_model, run_queries, scorer_queries

    def start(stop: threading.Event, metrics: Any, started: Callable[[], None]) -> None:
        settings = get_settings()
        version, registry = resolve_model(model_version, registry_dir, settings)
        running = landing_queries(land, settings, trigger_seconds=trigger_seconds, metrics=metrics) if land else []
        if features:
            running += features_queries(settings, trigger_seconds=trigger_seconds, metrics=metrics)
        scoring, close = scorer_queries(version, registry, settings, trigger_seconds=trigger_seconds,
                                        metrics=metrics)
        started()
        try:
            run_queries(running + scoring, stop)
        finally:
            close()

    _run(start, metrics_port, "score")
