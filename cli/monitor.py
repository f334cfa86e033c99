"""``cryptolake monitor``: serve consumer lag and table freshness on /metrics until SIGTERM/SIGINT."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import typer

from cryptolake.logs import get_logger

log = get_logger(__name__)


def monitor(
    metrics_port: int = typer.Option(0, "--metrics-port", help="Port of /metrics on 127.0.0.1 (0 picks a free one)"),
    no_kafka: bool = typer.Option(False, "--no-kafka", help="Export table freshness only (no broker to ask)"),
) -> None:
    """Export consumer lag per topic and group and freshness per Delta table to Prometheus."""
    from cryptolake.metrics import MetricsServer
    from cryptolake.settings import get_settings
    from infra.monitor import monitor_registry

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = MetricsServer(monitor_registry(get_settings(), kafka=not no_kafka))
    port = server.start(metrics_port)
    log.info("monitor.serving", extra={"port": port})
    try:
        stop.wait()
    finally:
        server.close()
        log.info("monitor.stopped", extra={"port": port})
