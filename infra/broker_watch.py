"""The supervisor's broker watch: restart the local Kafka broker (same port, same data) when it stops answering.

The broker runs detached (:mod:`infra.broker`), so it is not one of the supervisor's children; this
watch checks it every ``broker_check_s`` seconds (pid alive AND a metadata request answered) and,
when it is down, starts it again with :func:`infra.broker.start`, which reuses the previous port
and data directory, so every client's bootstrap stays valid and nothing acknowledged is lost.
Runs in its own thread: a restart (seconds) never delays the restart of a child.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from cryptolake.errors import InfrastructureError
from cryptolake.logs import get_logger
from cryptolake.settings import Settings
from infra import broker

log = get_logger(__name__)


class BrokerWatch:
    """Checks the broker every ``check_s`` seconds and restarts it when down; counts restarts and failures."""

    def __init__(self, settings: Settings, check_s: float, registry: Any) -> None:
        from prometheus_client import Gauge

        self.settings, self.check_s = settings, check_s
        self.restarts = 0
        self.failures = 0
        self.up = False
        self.bootstrap: str | None = None
        self._up = Gauge("cryptolake_broker_up", "1 while the local Kafka broker answers", registry=registry)
        self._restarts = Gauge("cryptolake_broker_restarts", "Restarts of the broker by the supervisor",
                               registry=registry)
        self._thread: threading.Thread | None = None

    def check(self) -> None:
        """One check: record the broker's health; start it again if it is down."""
        info = broker.status(self.settings)
        if info is None:
            self.up = False
            self._up.set(0)
            log.warning("supervisor.broker_down", extra={"bootstrap": self.bootstrap})
            try:
                info = broker.start(self.settings)
            except InfrastructureError as exc:  # tried again at the next check
                self.failures += 1
                log.error("supervisor.broker_restart_failed", extra={"error": str(exc)[:500],
                                                                     "failures": self.failures})
                return
            self.restarts += 1
            self._restarts.set(self.restarts)
            log.warning("supervisor.broker_restarted", extra={"bootstrap": info.bootstrap, "pid": info.pid,
                                                              "restarts": self.restarts})
        self.up, self.bootstrap = True, info.bootstrap
        self._up.set(1)

    def state(self) -> dict[str, Any]:
        return {"up": self.up, "bootstrap": self.bootstrap, "restarts": self.restarts, "failures": self.failures}

    def start(self, stop: threading.Event) -> None:
        """Check in a daemon thread until ``stop`` is set."""
        def loop() -> None:
            while not stop.is_set():
                t0 = time.monotonic()
                try:
                    self.check()
                except Exception as exc:  # the watch must never die silently: log and keep checking
                    log.error("supervisor.broker_watch_error", extra={"error": repr(exc)[:500]})
                stop.wait(max(0.0, self.check_s - (time.monotonic() - t0)))

        self._thread = threading.Thread(target=loop, name="broker-watch", daemon=True)
        self._thread.start()

    def join(self, timeout_s: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)
