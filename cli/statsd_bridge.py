"""``cryptolake statsd-bridge``: Airflow's StatsD metrics on a Prometheus /metrics, until SIGTERM/SIGINT."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import typer

from cryptolake.logs import get_logger

log = get_logger(__name__)


def statsd_bridge(
    udp_port: int = typer.Option(8125, "--udp-port", help="UDP port on 127.0.0.1 receiving StatsD lines "
                                 "(Airflow's metrics.statsd_port; 0 picks a free one)"),
    metrics_port: int = typer.Option(0, "--metrics-port", help="Port of /metrics on 127.0.0.1 (0 picks a free one)"),
) -> None:
    """Translate StatsD counters, gauges and timers (Airflow's metrics) into Prometheus series on /metrics.

    Names are sanitised (airflow.scheduler_heartbeat -> airflow_scheduler_heartbeat_total); timers become
    histograms in seconds; malformed lines are dropped, counted in statsd_bridge_malformed_total and logged.
    """
    from infra.statsd_bridge import StatsdBridge

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    bridge = StatsdBridge()
    bridge.start(udp_port, metrics_port)
    try:
        stop.wait()
    finally:
        bridge.close()
        log.info("statsd_bridge.stopped", extra={"udp_port": bridge.udp_port, "metrics_port": bridge.metrics_port})
