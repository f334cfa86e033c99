"""Prometheus metrics of the streaming processes (``cryptolake stream land|features|score|hot``).

One :class:`StreamMetrics` per process, on its own registry (several in one test process never
collide), served on ``/metrics`` by :class:`cryptolake.metrics.MetricsServer`. Per query: batch
duration, batches and the last batch's wall time; per topic: rows landed and quarantined; per
stage: the per-bar latency (seconds from the venue's bar close, see :mod:`pipeline.latency`); per
hop: seconds between two stages of a bar (``ingest->hot_signal``: the hot path's own part, also
meaningful for a replay of old bars). Every stage and hop also has its p50 and p99 over the last
:data:`QUANTILE_BARS` bars as a gauge, so a dashboard reads them without ``histogram_quantile``.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from cryptolake.metrics import MetricsServer

_BATCH_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0, 120.0)
_LATENCY_BUCKETS = (0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0)
_HOP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 30.0)
QUANTILE_BARS = 1_000


class StreamMetrics:
    """The streaming processes' series."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.batch_seconds = Histogram("cryptolake_stream_batch_seconds", "Micro-batch duration", ["query"],
                                       buckets=_BATCH_BUCKETS, registry=r)
        self.batches = Counter("cryptolake_stream_batches", "Micro-batches completed", ["query"], registry=r)
        self.last_batch = Gauge("cryptolake_stream_last_batch_timestamp_seconds",
                                "Wall time (epoch s) the query's last micro-batch finished", ["query"], registry=r)
        self.rows_landed = Counter("cryptolake_stream_rows_landed", "Valid rows landed in bronze", ["topic"],
                                   registry=r)
        self.rows_quarantined = Counter("cryptolake_stream_rows_quarantined",
                                        "Invalid rows landed in quarantine with their reason", ["topic"], registry=r)
        self.rows_written = Counter("cryptolake_stream_rows_written", "Rows a stage wrote (features, signals)",
                                    ["stage"], registry=r)
        self.bar_latency = Histogram("cryptolake_stream_bar_latency_seconds",
                                     "Venue bar close to the stage's stamp, per bar", ["stage"],
                                     buckets=_LATENCY_BUCKETS, registry=r)
        self.bar_hop = Histogram("cryptolake_stream_bar_hop_seconds",
                                 "Seconds between two stages of a bar (e.g. ingest->hot_signal)", ["hop"],
                                 buckets=_HOP_BUCKETS, registry=r)
        self.recent_quantile = Gauge("cryptolake_stream_bar_latency_recent_seconds",
                                     f"p50/p99 of a stage's latency from the bar close (or of a hop) over the last "
                                     f"{QUANTILE_BARS} bars", ["series", "quantile"], registry=r)
        self._recent: dict[str, deque[float]] = {}
        self._server = MetricsServer(r)

    def batch(self, query: str, seconds: float, finished_at: float) -> None:
        """Record one finished micro-batch of ``query``."""
        self.batch_seconds.labels(query).observe(seconds)
        self.batches.labels(query).inc()
        self.last_batch.labels(query).set(finished_at)

    def landed(self, topic: str, landed: int, quarantined: int) -> None:
        self.rows_landed.labels(topic).inc(landed)
        self.rows_quarantined.labels(topic).inc(quarantined)

    def latencies(self, stage: str, seconds: list[float]) -> None:
        """Observe per-bar latencies (bar close -> ``stage``) of one batch."""
        for s in seconds:
            self.bar_latency.labels(stage).observe(s)
        self._quantiles(stage, seconds)

    def hops(self, hop: str, seconds: list[float]) -> None:
        """Observe per-bar seconds between two stages (``hop`` like ``ingest->hot_signal``) of one batch."""
        for s in seconds:
            self.bar_hop.labels(hop).observe(s)
        self._quantiles(hop, seconds)

    def _quantiles(self, series: str, seconds: list[float]) -> None:
        if not seconds:
            return
        recent = self._recent.setdefault(series, deque(maxlen=QUANTILE_BARS))
        recent.extend(seconds)
        p50, p99 = np.percentile(np.fromiter(recent, dtype=float), [50, 99])
        self.recent_quantile.labels(series, "0.5").set(float(p50))
        self.recent_quantile.labels(series, "0.99").set(float(p99))

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` (a daemon thread; port 0 picks a free one); returns the port."""
        return self._server.start(port, host)

    def close(self) -> None:
        self._server.close()
