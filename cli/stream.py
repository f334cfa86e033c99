"""`cryptolake stream`: the continuous landing, features and scorer processes (run until SIGTERM)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

import typer

from cryptolake.errors import CryptolakeError

app = typer.Typer(help="Continuous processes: land, features, score (Structured Streaming) and hot (in process).",
                  no_args_is_help=True)


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


@app.command("hot")
def hot(
    model_version: str = typer.Option("champion", help="Model version to score with, or 'champion'"),
    registry_dir: str = typer.Option(None, help="Model registry folder (default: the configured market's)"),
    timeframe: list[str] = typer.Option([], "--timeframe", help="Candle timeframe to handle (repeat; default: "
                                        "the configured market's)"),
    group_id: str = typer.Option("cryptolake-hot", help="Kafka consumer group whose committed offsets it resumes"),
    poll_ms: int = typer.Option(500, min=1, help="Kafka poll timeout (ms; a poll returns as soon as records come)"),
    stamp_every: float = typer.Option(2.0, min=0.1, help="Seconds between appends of the stage stamps"),
    replay_records: int = typer.Option(1_000, min=0, help="Records per partition re-read before the committed "
                                       "offset at start (refills the windows past silver's last bar)"),
    metrics_port: int = typer.Option(None, help="Serve Prometheus /metrics on 127.0.0.1:PORT"),
) -> None:
    """The hot path: each closed candle of market.ohlcv -> its gold row and signal in this process, in < 5 s.

    Why: the Spark chain (land, silver, gold, score) is the lake's exactly-once record, one micro-batch per hop.

    This process computes the same gold row (features_pandas, windows seeded from silver.bars) and score.

    It publishes the batch scorer's signal_id: the trader acts on whichever copy arrives first, skips the other.

    Bad candles go to dlq.market.ohlcv naming the field; offsets are committed after the signals are acked.

    Stamps ingest, hot_features and hot_signal in ops.bar_stages (`cryptolake status`). No JVM.

    A model that failed the champion gate publishes nothing. Runs until SIGTERM / Ctrl-C, then exits 0.
    """
    from cryptolake.settings import get_settings
    from pipeline.hot_stream import HOT_GROUP, run_hot, start_hot
    from pipeline.stream import resolve_model

    def start(stop: threading.Event, metrics: Any, started: Callable[[], None]) -> None:
        settings = get_settings()
        version, registry = resolve_model(model_version, registry_dir, settings)
        run = start_hot(version, registry, settings, timeframes=tuple(timeframe) or (settings.market.timeframe,),
                        group_id=group_id or HOT_GROUP, poll_timeout_ms=poll_ms, stamp_every_s=stamp_every,
                        replay_records=replay_records, metrics=metrics)
        if run.refused is not None:
            typer.echo(f"stream hot: publishing nothing: {run.refused}", err=True)
        else:
            typer.echo(f"stream hot: model {version}, {len(run.seeded)} series seeded from silver "
                       f"({sum(run.seeded.values())} bars)")
        started()
        stats = run_hot(run, stop)
        if stats is not None:
            typer.echo(f"stream hot: {stats.signals} signals from {stats.candles} candles, "
                       f"{stats.dead_lettered} dead-lettered")

    _run(start, metrics_port, "hot")
