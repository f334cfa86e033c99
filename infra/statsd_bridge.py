"""StatsD -> Prometheus: the bridge that gives Airflow's scheduler, DAG processor and tasks a /metrics.

Airflow 3 pushes its metrics as StatsD datagrams (``[metrics] statsd_on``); Prometheus pulls. Debian
packages no statsd-exporter, so this module is the in-project translator: a UDP receiver on
127.0.0.1 (:class:`StatsdBridge`) feeding a :class:`StatsdTranslator`, a collector served on its own
registry by :class:`cryptolake.metrics.MetricsServer`.

Translation (one datagram may hold several ``\\n``-separated lines, ``name:value|type[|@rate]``):

- names are sanitised (:func:`prom_name`): ``airflow.scheduler_heartbeat`` -> ``airflow_scheduler_heartbeat``;
- ``|c`` counters add ``value / rate`` and are exported as ``<name>_total``; a negative increment is
  rejected (a Prometheus counter never goes down);
- ``|g`` gauges are set, or moved by a signed value (``+3|g``, ``-2|g``: StatsD's deltas);
- ``|ms`` timers become histograms in seconds, ``<name>_seconds`` (each observation weighted ``1 / rate``).

A line that cannot be translated (bad syntax, unknown type, a name already used by another type,
too many series) is dropped, counted in ``statsd_bridge_malformed_total{reason}`` and logged with the
line truncated (at most :data:`LOG_BURST` per minute, so a flood cannot fill the disk); it never stops
the bridge. Series are kept for the bridge's lifetime (Airflow's names are a bounded set, and
:data:`SERIES_LIMIT` bounds them anyway).
"""

from __future__ import annotations

import bisect
import math
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from cryptolake.logs import get_logger
from cryptolake.metrics import MetricsServer

log = get_logger(__name__)

Kind = Literal["counter", "gauge", "timer"]
TYPES: dict[str, Kind] = {"c": "counter", "g": "gauge", "ms": "timer"}
# seconds: Airflow times DAG parses and scheduler loops (ms) as well as task and run durations (minutes)
BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
                              1800.0)
SERIES_LIMIT = 5000
MAX_LINE = 1024  # longer lines are not StatsD (Airflow's names are far shorter)
LOGGED_CHARS = 200
LOG_BURST = 20
REASONS = ("syntax", "bad_value", "bad_rate", "unsupported_type", "bad_name", "negative_counter",
           "negative_timer", "type_conflict", "series_limit", "too_long", "not_utf8", "internal")
OWN_SERIES = ("statsd_bridge_packets_total", "statsd_bridge_lines_total", "statsd_bridge_malformed_total",
              "statsd_bridge_series")
_INVALID = re.compile(r"[^a-zA-Z0-9_]")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


class MalformedLine(ValueError):
    """A StatsD line the bridge cannot translate; ``reason`` is the label it is counted under."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class StatsdSample:
    """One parsed line: the sanitised name, its kind, the value (ms for timers) and the sample rate."""

    name: str
    kind: Kind
    value: float
    rate: float = 1.0
    delta: bool = False  # a gauge's signed value moves it instead of setting it


def prom_name(stat: str) -> str:
    """A StatsD name as a Prometheus metric name: every character outside ``[a-zA-Z0-9_]`` becomes ``_``."""
    name = _INVALID.sub("_", stat.strip())
    return f"_{name}" if name[:1].isdigit() else name


def exported_name(name: str, kind: Kind) -> str:
    """The family name a sanitised StatsD name is exposed under (counters ``_total``, timers ``_seconds``)."""
    if kind == "counter":
        return name if name.endswith("_total") else f"{name}_total"
    return f"{name}_seconds" if kind == "timer" else name


def _number(text: str, reason: str, line: str) -> float:
    if not _NUMBER.match(text):
        raise MalformedLine(reason, line)
    return float(text)


def parse_line(line: str) -> StatsdSample:
    """Parse ``name:value|type[|@rate]``; raises :class:`MalformedLine` naming what is wrong."""
    if len(line) > MAX_LINE:
        raise MalformedLine("too_long", f"{len(line)} characters")
    stat, sep, rest = line.partition(":")
    if not sep or not rest:
        raise MalformedLine("syntax", "no ':' between name and value")
    name = prom_name(stat)
    if not stat.strip() or not name.strip("_"):
        raise MalformedLine("bad_name", repr(stat))
    parts = rest.split("|")
    if len(parts) < 2 or len(parts) > 3:
        raise MalformedLine("syntax", "expected value|type[|@rate]")
    kind = TYPES.get(parts[1].strip())
    if kind is None:
        raise MalformedLine("unsupported_type", repr(parts[1]))
    raw = parts[0].strip()
    value = _number(raw, "bad_value", raw)
    rate = 1.0
    if len(parts) == 3:
        if not parts[2].startswith("@"):
            raise MalformedLine("syntax", f"third field {parts[2]!r} is not @rate")
        rate = _number(parts[2][1:], "bad_rate", parts[2])
        if not 0.0 < rate <= 1.0:
            raise MalformedLine("bad_rate", parts[2])
    if not math.isfinite(value):
        raise MalformedLine("bad_value", raw)
    if kind == "counter" and value < 0:
        raise MalformedLine("negative_counter", raw)
    if kind == "timer" and value < 0:
        raise MalformedLine("negative_timer", raw)
    return StatsdSample(name, kind, value, rate, delta=kind == "gauge" and raw[:1] in "+-")


@dataclass
class _Timer:
    buckets: list[float]
    total: float = 0.0
    count: float = 0.0


@dataclass
class _Throttle:
    """At most ``burst`` log lines per ``window_s``; what it held back is reported when the window turns."""

    burst: int
    window_s: float
    clock: Callable[[], float]
    start: float = 0.0
    logged: int = 0
    held: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def allow(self) -> bool:
        with self._lock:
            now = self.clock()
            if now - self.start >= self.window_s:
                if self.held:
                    log.warning("statsd_bridge.malformed_not_logged", extra={"lines": self.held,
                                                                             "window_s": self.window_s})
                self.start, self.logged, self.held = now, 0, 0
            if self.logged < self.burst:
                self.logged += 1
                return True
            self.held += 1
            return False


class StatsdTranslator(Collector):
    """StatsD lines in, Prometheus families out at scrape time (thread-safe: UDP thread vs HTTP thread)."""

    def __init__(self, *, series_limit: int = SERIES_LIMIT, buckets: Iterable[float] = BUCKETS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.series_limit = series_limit
        self.bounds = tuple(sorted(buckets))
        self._lock = threading.Lock()
        self._kinds: dict[str, Kind] = {}
        # every sample name exposed -> the StatsD name that owns it (the bridge's own series first)
        self._taken: dict[str, str] = {n: "statsd_bridge" for n in OWN_SERIES}
        self._counters: dict[str, float] = {}
        self._gauges: dict[str, float] = {}
        self._timers: dict[str, _Timer] = {}
        self.packets = 0
        self.lines = 0
        self.malformed = dict.fromkeys(REASONS, 0)
        self._throttle = _Throttle(LOG_BURST, 60.0, clock, start=-math.inf)

    def feed(self, packet: bytes) -> int:
        """Translate one datagram; returns the lines accepted (the rest are counted and logged)."""
        with self._lock:
            self.packets += 1
        try:
            text = packet.decode("utf-8")
        except UnicodeDecodeError:
            self._reject("not_utf8", packet.decode("utf-8", errors="replace"))
            return 0
        accepted = 0
        for line in text.splitlines():
            if line.strip():
                accepted += self.apply(line)
        return accepted

    def apply(self, line: str) -> int:
        """Translate one line: 1 if accepted, 0 if it was malformed (counted, logged)."""
        try:
            sample = parse_line(line.strip())
            with self._lock:
                self._record(sample)
                self.lines += 1
        except MalformedLine as exc:
            self._reject(exc.reason, line)
            return 0
        return 1

    def count_internal(self, packet: bytes, exc: Exception) -> None:
        """Count and log a datagram the translator failed on (a bug, not the sender's fault)."""
        with self._lock:
            self.malformed["internal"] = self.malformed.get("internal", 0) + 1
        log.error("statsd_bridge.internal_error", extra={"error": f"{type(exc).__name__}: {exc}"[:300],
                                                         "packet": packet[:LOGGED_CHARS].decode("utf-8", "replace")})

    def _reject(self, reason: str, line: str) -> None:
        with self._lock:
            self.malformed[reason] = self.malformed.get(reason, 0) + 1
        if self._throttle.allow():
            log.warning("statsd_bridge.malformed", extra={"reason": reason, "line": line[:LOGGED_CHARS],
                                                          "length": len(line)})

    def _claim(self, s: StatsdSample) -> None:
        """Register a new series: its name must not be taken by another type, and the limit holds."""
        known = self._kinds.get(s.name)
        if known == s.kind:
            return
        if known is not None:
            raise MalformedLine("type_conflict", f"{s.name} is a {known}, not a {s.kind}")
        family = exported_name(s.name, s.kind)
        samples = [family] if s.kind != "timer" else [f"{family}_{x}" for x in ("bucket", "sum", "count")]
        clash = next((self._taken[n] for n in (family, *samples) if n in self._taken), None)
        if clash is not None:
            raise MalformedLine("type_conflict", f"{family} is already exposed for {clash}")
        if len(self._kinds) >= self.series_limit:
            raise MalformedLine("series_limit", f"{self.series_limit} series already")
        self._kinds[s.name] = s.kind
        for n in (family, *samples):
            self._taken[n] = s.name

    def _record(self, s: StatsdSample) -> None:
        self._claim(s)
        if s.kind == "counter":
            self._counters[s.name] = self._counters.get(s.name, 0.0) + s.value / s.rate
        elif s.kind == "gauge":
            self._gauges[s.name] = (self._gauges.get(s.name, 0.0) + s.value) if s.delta else s.value
        else:
            timer = self._timers.setdefault(s.name, _Timer([0.0] * (len(self.bounds) + 1)))
            seconds, weight = s.value / 1000.0, 1.0 / s.rate
            timer.buckets[bisect.bisect_left(self.bounds, seconds)] += weight
            timer.total += seconds * weight
            timer.count += weight

    def collect(self) -> Iterator[Any]:
        with self._lock:
            counters, gauges = dict(self._counters), dict(self._gauges)
            timers = {k: _Timer(list(t.buckets), t.total, t.count) for k, t in self._timers.items()}
            packets, lines, malformed = self.packets, self.lines, dict(self.malformed)
        for name, value in sorted(counters.items()):
            yield CounterMetricFamily(exported_name(name, "counter"), f"StatsD counter {name}", value=value)
        for name, value in sorted(gauges.items()):
            yield GaugeMetricFamily(name, f"StatsD gauge {name}", value=value)
        for name, t in sorted(timers.items()):
            cumulative, running = [], 0.0
            for bound, n in zip((*self.bounds, math.inf), t.buckets, strict=True):
                running += n
                cumulative.append((floatToGoString(bound), running))  # "1.0", "+Inf": as prometheus_client's own
            yield HistogramMetricFamily(exported_name(name, "timer"), f"StatsD timer {name} (seconds)",
                                        buckets=cumulative, sum_value=t.total)
        yield CounterMetricFamily("statsd_bridge_packets", "StatsD datagrams received", value=packets)
        yield CounterMetricFamily("statsd_bridge_lines", "StatsD lines translated", value=lines)
        bad = CounterMetricFamily("statsd_bridge_malformed", "StatsD lines dropped, by reason", labels=["reason"])
        for reason, n in sorted(malformed.items()):
            bad.add_metric([reason], n)
        yield bad
        yield GaugeMetricFamily("statsd_bridge_series", "StatsD series held", value=len(counters) + len(gauges)
                                + len(timers))


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port nobody has bound right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class StatsdBridge:
    """The UDP receiver (a daemon thread) and the ``/metrics`` server of one :class:`StatsdTranslator`."""

    def __init__(self, translator: StatsdTranslator | None = None) -> None:
        self.translator = translator or StatsdTranslator()
        self.registry = CollectorRegistry()
        self.registry.register(self.translator)
        self.udp_port = 0
        self.metrics_port = 0
        self._sock: socket.socket | None = None
        self._server = MetricsServer(self.registry)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, udp_port: int = 0, metrics_port: int = 0, host: str = "127.0.0.1") -> tuple[int, int]:
        """Bind UDP ``host:udp_port`` and serve ``/metrics`` on ``host:metrics_port`` (0 = free ones)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            # a burst (every task finishing at once) must wait in the kernel, not be dropped by it
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.bind((host, udp_port))
            sock.settimeout(0.5)
            self.metrics_port = self._server.start(metrics_port, host)
        except BaseException:
            sock.close()
            raise
        self._sock, self.udp_port = sock, int(sock.getsockname()[1])
        self._stop.clear()
        self._thread = threading.Thread(target=self._receive, name="statsd-udp", daemon=True)
        self._thread.start()
        log.info("statsd_bridge.serving", extra={"udp_port": self.udp_port, "metrics_port": self.metrics_port})
        return self.udp_port, self.metrics_port

    def _receive(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stop.is_set():
            try:
                packet = sock.recv(65535)
            except TimeoutError:
                continue
            except OSError as exc:
                if not self._stop.is_set():
                    log.warning("statsd_bridge.recv_failed", extra={"error": str(exc)})
                    time.sleep(0.1)
                continue
            try:
                self.translator.feed(packet)
            except Exception as exc:  # a bug must not end the receiver silently: counted, logged, next datagram
                self.translator.count_internal(packet, exc)

    def close(self) -> None:
        """Stop receiving and serving."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._server.close()

    def __enter__(self) -> StatsdBridge:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
