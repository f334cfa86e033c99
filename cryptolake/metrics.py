"""The one way a cryptolake process serves Prometheus metrics: its own registry on ``/metrics``.

Every long-running process (connectors, landing, features, scorer, trader, supervisor) builds its
series on a :class:`prometheus_client.CollectorRegistry` of its own (several in one test process never
collide) and serves it with :class:`MetricsServer`; the supervisor passes ``--metrics-port`` and
Prometheus scrapes ``127.0.0.1:<port>/metrics``.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, start_http_server


class MetricsServer:
    """``/metrics`` of one registry on ``host:port`` (a daemon thread); port 0 picks a free one."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._server: Any = None

    def start(self, port: int = 0, host: str = "127.0.0.1") -> int:
        """Start serving (idempotent) and return the port actually bound."""
        if self._server is None:
            self._server, _ = start_http_server(port, addr=host, registry=self.registry)
        return int(self._server.server_port)

    def close(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
