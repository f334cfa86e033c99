"""Alerts where traders look (Telegram, Slack, Discord, e-mail, webhooks), through apprise.

Every process raises alerts through one :class:`Alerter`: fills, the kill switch, drawdown thresholds,
pipeline failures, stale data, model promotion. An alert has a ``key``; the same key is sent once per
``dedup_window_s`` (repeats are counted, not sent), and at most ``rate_limit_per_min`` alerts leave per
minute (the rest are counted as dropped and logged). Destinations are apprise URLs, which hold tokens
and passwords, so they are secrets: read from ``CRYPTOLAKE_ALERT_URLS`` (or ``CRYPTOLAKE_ALERT_URLS_FILE``),
one per line or separated by spaces or commas, never from settings and never logged.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from cryptolake.errors import ConfigError
from cryptolake.logs import get_logger, register_secret
from cryptolake.secrets import read_secret
from cryptolake.settings import AlertSettings

log = get_logger(__name__)
URLS_ENV = "CRYPTOLAKE_ALERT_URLS"


class AlertKind(StrEnum):
    """What an alert is about; settings choose which kinds are sent."""

    FILL = "fill"
    KILL_SWITCH = "kill_switch"
    DRAWDOWN = "drawdown"
    PIPELINE_FAILURE = "pipeline_failure"
    STALE_DATA = "stale_data"
    MODEL_PROMOTION = "model_promotion"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True)
class Alert:
    """One notification. ``key`` identifies repeats of the same fact (e.g. ``kill_switch:paper@binance``)."""

    kind: AlertKind
    title: str
    body: str
    key: str
    severity: Severity = Severity.INFO


@dataclass
class AlertCounts:
    """What the alerter did, for metrics and tests."""

    sent: int = 0
    deduplicated: int = 0
    rate_limited: int = 0
    filtered: int = 0
    failed: int = 0


Sender = Callable[[Alert], bool]


def alert_urls() -> tuple[str, ...]:
    """The destinations from the environment (a secret); empty when none is set."""
    raw = read_secret(URLS_ENV) or ""
    urls = tuple(u for u in re.split(r"[\s,]+", raw) if u)
    for url in urls:
        register_secret(url)
        if "://" not in url:
            raise ConfigError(f"{URLS_ENV}: {url[:8]}... is not an apprise URL (scheme://...)")
    return urls


def apprise_sender(urls: Sequence[str]) -> Sender:
    """A sender delivering to every apprise URL; ``False`` when a destination refused it."""
    import apprise

    app = apprise.Apprise()
    for url in urls:
        if not app.add(url):
            raise ConfigError(f"{URLS_ENV}: apprise does not accept the URL with scheme {url.split('://')[0]!r}")
    types = {Severity.INFO: apprise.NotifyType.INFO, Severity.WARNING: apprise.NotifyType.WARNING,
             Severity.CRITICAL: apprise.NotifyType.FAILURE}

    def send(alert: Alert) -> bool:
        return bool(app.notify(title=alert.title, body=alert.body, notify_type=types[alert.severity]))

    return send


@dataclass
class Alerter:
    """Deduplicates and rate-limits alerts, then hands them to ``sender`` (thread safe)."""

    settings: AlertSettings
    sender: Sender | None
    clock: Callable[[], float] = time.monotonic
    counts: AlertCounts = field(default_factory=AlertCounts)
    _last_sent: dict[str, float] = field(default_factory=dict)
    _window: deque[float] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_environment(cls, settings: AlertSettings) -> Alerter:
        """An alerter to the URLs in the environment; with none set it counts alerts and sends nothing."""
        urls = alert_urls()
        return cls(settings, apprise_sender(urls) if urls else None)

    def raise_alert(self, alert: Alert) -> bool:
        """Send ``alert`` unless filtered, a repeat inside the window, or over the rate; ``True`` if sent."""
        with self._lock:
            if alert.kind.value not in self.settings.kinds:
                self.counts.filtered += 1
                return False
            now = self.clock()
            last = self._last_sent.get(alert.key)
            if last is not None and now - last < self.settings.dedup_window_s:
                self.counts.deduplicated += 1
                return False
            while self._window and now - self._window[0] >= 60.0:
                self._window.popleft()
            if len(self._window) >= self.settings.rate_limit_per_min:
                self.counts.rate_limited += 1
                log.warning("alert.rate_limited", extra={"kind": alert.kind.value, "key": alert.key})
                return False
            self._last_sent[alert.key] = now
            self._window.append(now)
        if self.sender is None:
            return False
        ok = self.sender(alert)
        with self._lock:
            if ok:
                self.counts.sent += 1
            else:
                self.counts.failed += 1
        if not ok:
            log.warning("alert.failed", extra={"kind": alert.kind.value, "key": alert.key})
        return ok
