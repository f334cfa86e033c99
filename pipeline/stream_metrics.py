"""Prometheus metrics of the streaming processes (``cryptolake stream land|features|score``).

One :class:`StreamMetrics` per process, on its own registry (several in one test process never
collide), served on ``/metrics`` by :class:`cryptolake.metrics.MetricsServer`. Per query: batch
duration, batches and the last batch's wall time; per topic: rows landed and quarantined; per
stage: the per-bar latency (seconds from the venue's bar close, see :mod:`pipeline.latency`).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from cryptolake.metrics import MetricsServer

_BATCH_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0, 120.0)
_LATENCY_BUCKETS = (0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0)


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

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` (a daemon thread; port 0 picks a free one); returns the port."""
        return self._server.start(port, host)

    def close(self) -> None:
        self._server.close()
