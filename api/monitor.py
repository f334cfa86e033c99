"""The dashboard's watch: stale lake tables and model promotions raise alerts (see :class:`pipeline.alerts.LakeWatch`).

``cryptolake serve`` checks every ``alerts.watch_interval_s``; the alerts raised are kept (newest last) for
``GET /api/v1/alerts``. Fills, halts and drawdowns are raised by the trading session itself
(:mod:`trader.notify`).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool

from api.lake import freshness
from cryptolake.alerts import Alert, Alerter
from cryptolake.errors import ModelNotFoundError
from cryptolake.logs import get_logger
from cryptolake.settings import Settings
from pipeline.alerts import LakeWatch

log = get_logger(__name__)


class Monitor:
    """One :class:`LakeWatch` over the app's lake and model registry, and the alerts it raised."""

    def __init__(self, settings: Settings, alerter: Alerter | None = None) -> None:
        self.settings = settings
        self.watch = LakeWatch(alerter or Alerter.from_environment(settings.alerts), settings.alerts.stale_data_after_s)
        self.raised: deque[tuple[int, datetime, Alert]] = deque(maxlen=200)  # (sequence number, when, alert)
        self.count = 0
        self._lock = threading.Lock()

    def check(self, now: datetime) -> list[Alert]:
        """One look at the lake's freshness and the champion at ``now``."""
        from models.registry import ModelRegistry

        registry = ModelRegistry.for_settings(self.settings)
        try:
            champion = registry.champion(now) if registry.root.exists() else None
        except ModelNotFoundError:
            champion = None
        with self._lock:
            alerts = self.watch.check(freshness(self.settings, now), champion)
            for a in alerts:
                self.count += 1
                self.raised.append((self.count, now, a))
        return alerts

    def recent(self, after: int = 0) -> list[dict[str, Any]]:
        """The kept alerts numbered above ``after``, newest first (each with its ``seq``)."""
        with self._lock:
            return [{"seq": n, "ts": ts, "kind": a.kind.value, "title": a.title, "body": a.body,
                     "severity": a.severity.value} for n, ts, a in reversed(self.raised) if n > after]

    async def run(self, clock: Any) -> None:
        """Check every ``watch_interval_s`` until cancelled; a failed check is logged, never fatal."""
        from cryptolake.types import from_ms

        while True:
            try:
                await run_in_threadpool(self.check, from_ms(int(clock() * 1000)))
            except Exception as exc:  # the watch must outlive a broken table or registry; it says why
                log.warning("monitor.check_failed", extra={"error": f"{type(exc).__name__}: {exc}"})
            await asyncio.sleep(self.settings.alerts.watch_interval_s)
