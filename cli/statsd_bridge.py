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
    keep_legacy_names: bool = typer.Option(False, "--keep-legacy-names", help="Also export Airflow's legacy "
                                           "names with the ids baked in (airflow.ti.finish.<dag>.<task>.<state>); "
                                           "by default they are skipped, counted in "
                                           "statsd_bridge_legacy_skipped_total, as the tagged metrics carry them"),
) -> None:
    """Translate StatsD counters, gauges and timers (Airflow's metrics) into Prometheus series on /metrics.

    Names are sanitised (airflow.scheduler_heartbeat -> airflow_scheduler_heartbeat_total); InfluxDB-style
    tags (airflow.ti.finish,dag_id=d,task_id=t,state=success:1|c, Airflow's statsd_influxdb_enabled) become
    labels (airflow_ti_finish_total{dag_id="d",state="success",task_id="t"}); timers become histograms in
    seconds; malformed lines are dropped, counted in statsd_bridge_malformed_total and logged.
    """
    from infra.statsd_bridge import StatsdBridge, StatsdTranslator

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    bridge = StatsdBridge(StatsdTranslator(drop_legacy=not keep_legacy_names))
    bridge.start(udp_port, metrics_port)
    try:
        stop.wait()
    finally:
        bridge.close()
        log.info("statsd_bridge.stopped", extra={"udp_port": bridge.udp_port, "metrics_port": bridge.metrics_port})
