"""StatsD -> Prometheus: the bridge that gives Airflow's scheduler, DAG processor and tasks a /metrics.

Airflow 3 pushes its metrics as StatsD datagrams (``[metrics] statsd_on``); Prometheus pulls. Debian
packages no statsd-exporter, so this module is the in-project translator: a UDP receiver on
127.0.0.1 (:class:`StatsdBridge`) feeding a :class:`StatsdTranslator`, a collector served on its own
registry by :class:`cryptolake.metrics.MetricsServer`.

Translation (one datagram may hold several ``\\n``-separated lines, ``name[,tag=value...]:value|type[|@rate]``):

- names are sanitised (:func:`prom_name`): ``airflow.scheduler_heartbeat`` -> ``airflow_scheduler_heartbeat``;
- ``|c`` counters add ``value / rate`` and are exported as ``<name>_total``; a negative increment is
  rejected (a Prometheus counter never goes down);
- ``|g`` gauges are set, or moved by a signed value (``+3|g``, ``-2|g``: StatsD's deltas);
- ``|ms`` timers become histograms in seconds, ``<name>_seconds`` (each observation weighted ``1 / rate``);
- InfluxDB-style tags (what Airflow sends with ``[metrics] statsd_influxdb_enabled``:
  ``airflow.ti.finish,dag_id=d,task_id=t,state=success:1|c``) become labels
  (``airflow_ti_finish_total{dag_id="d",state="success",task_id="t"}``): tag names are sanitised like metric
  names, values are kept verbatim (the exposition escapes them). A metric's label names are the union of
  every tag name it was seen with; a series without one of them has it empty, which Prometheus reads as
  the label being absent, so a metric seen with different tag sets stays one consistent family. A tag
  with no ``=``, an empty or reserved (``__*``; ``le`` on a timer) name or a name given twice is
  malformed (``bad_tag``). DogStatsD's ``|#tag:value`` is not accepted (``syntax``);
- Airflow's legacy names, which bake the ids into the name (``airflow.ti.finish.<dag_id>.<task_id>.<state>``,
  :data:`LEGACY_NAMES`, Airflow's ``[metrics] legacy_names_on``), duplicate its tagged metrics; they are
  skipped (unless ``drop_legacy=False``) and counted in ``statsd_bridge_legacy_skipped_total{metric}``,
  ``metric`` being the tagged name that carries the same data.

A line that cannot be translated (bad syntax, unknown type, a name already used by another type,
too many series, a bad tag) is dropped, counted in ``statsd_bridge_malformed_total{reason}`` and logged with the
line truncated (at most :data:`LOG_BURST` per minute, so a flood cannot fill the disk); it never stops
the bridge. Series (one per metric and label values) are kept for the bridge's lifetime (Airflow's names
and ids are a bounded set, and :data:`SERIES_LIMIT` bounds them anyway: a new one beyond it is
``series_limit``).
"""

from __future__ import annotations

import bisect
import itertools
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
           "negative_timer", "type_conflict", "series_limit", "too_long", "not_utf8", "bad_tag", "internal")
OWN_SERIES = ("statsd_bridge_packets_total", "statsd_bridge_lines_total", "statsd_bridge_malformed_total",
              "statsd_bridge_series", "statsd_bridge_legacy_skipped_total")
# Airflow 3's metrics registry (airflow/_shared/observability/metrics/metrics_template.yaml): the tagged
# name -> its legacy name with the tags baked in (tests check this table against the installed Airflow)
LEGACY_NAMES: dict[str, str] = {
    "local_task_job.task_exit": "local_task_job.task_exit.{job_id}.{dag_id}.{task_id}.{return_code}",
    "operator_failures": "operator_failures_{operator_name}",
    "operator_successes": "operator_successes_{operator_name}",
    "ti.start": "ti.start.{dag_id}.{task_id}",
    "ti.finish": "ti.finish.{dag_id}.{task_id}.{state}",
    "task_removed_from_dag": "task_removed_from_dag.{dag_id}",
    "task_restored_to_dag": "task_restored_to_dag.{dag_id}",
    "task_instance_created": "task_instance_created_{task_type}",
    "dag_processing.last_run.seconds_ago": "dag_processing.last_run.seconds_ago.{file_name}",
    "executor.open_slots": "executor.open_slots.{executor_class_name}",
    "executor.queued_tasks": "executor.queued_tasks.{executor_class_name}",
    "executor.running_tasks": "executor.running_tasks.{executor_class_name}",
    "pool.open_slots": "pool.open_slots.{pool_name}",
    "pool.queued_slots": "pool.queued_slots.{pool_name}",
    "pool.running_slots": "pool.running_slots.{pool_name}",
    "pool.deferred_slots": "pool.deferred_slots.{pool_name}",
    "pool.scheduled_slots": "pool.scheduled_slots.{pool_name}",
    "pool.starving_tasks": "pool.starving_tasks.{pool_name}",
    "triggers.running": "triggers.running.{hostname}",
    "triggerer.capacity_left": "triggerer.capacity_left.{hostname}",
    "ti.scheduled": "ti.scheduled.{queue}.{dag_id}.{task_id}",
    "ti.queued": "ti.queued.{queue}.{dag_id}.{task_id}",
    "ti.running": "ti.running.{queue}.{dag_id}.{task_id}",
    "ti.deferred": "ti.deferred.{queue}.{dag_id}.{task_id}",
    "ol.event.size": "ol.event.size.{event_type}.{operator_name}",
    "edge_worker.status": "edge_worker.status.{worker_name}",
    "edge_worker.connected": "edge_worker.connected.{worker_name}",
    "edge_worker.maintenance": "edge_worker.maintenance.{worker_name}",
    "edge_worker.jobs_active": "edge_worker.jobs_active.{worker_name}",
    "edge_worker.concurrency": "edge_worker.concurrency.{worker_name}",
    "edge_worker.free_concurrency": "edge_worker.free_concurrency.{worker_name}",
    "edge_worker.num_queues": "edge_worker.num_queues.{worker_name}",
    "edge_worker.heartbeat_count": "edge_worker.heartbeat_count.{worker_name}",
    "edge_worker.ti.start": "edge_worker.ti.start.{queue}.{dag_id}.{task_id}",
    "edge_worker.ti.finish": "edge_worker.ti.finish.{queue}.{state}.{dag_id}.{task_id}",
    "dagrun.dependency-check": "dagrun.dependency-check.{dag_id}",
    "task.duration": "dag.{dag_id}.{task_id}.duration",
    "task.scheduled_duration": "dag.{dag_id}.{task_id}.scheduled_duration",
    "task.queued_duration": "dag.{dag_id}.{task_id}.queued_duration",
    "dag_processing.last_duration": "dag_processing.last_duration.{bundle_name}.{file_name}",
    "dagrun.duration.success": "dagrun.duration.success.{dag_id}",
    "dagrun.duration.failed": "dagrun.duration.failed.{dag_id}",
    "dagrun.schedule_delay": "dagrun.schedule_delay.{dag_id}",
    "dagrun.first_task_scheduling_delay": "dagrun.{dag_id}.first_task_scheduling_delay",
    "ol.emit.attempts": "ol.emit.attempts.{event_type}.{transport_type}",
    "ol.extract": "ol.extract.{event_type}.{operator_name}",
}


Labels = tuple[tuple[str, str], ...]
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
    labels: Labels = ()  # (sanitised tag name, value), sorted by name; empty values left out
    stat: str = ""  # the StatsD name as sent, without its tags


def legacy_matcher(prefix: str = "airflow") -> Callable[[str], str | None]:
    """``stat -> the tagged name`` whose legacy form ``stat`` is (under ``prefix``), else None."""
    head = f"{re.escape(prefix)}\\." if prefix else ""
    alternatives = {f"m{i}": name for i, name in enumerate(LEGACY_NAMES)}
    regex = re.compile("|".join(f"(?P<{g}>^{head}{_template_regex(LEGACY_NAMES[n])}$)"
                                for g, n in alternatives.items()))

    def match(stat: str) -> str | None:
        m = regex.match(stat)
        return alternatives[m.lastgroup] if m is not None and m.lastgroup is not None else None

    return match


def _template_regex(template: str) -> str:
    """``ti.finish.{dag_id}.{task_id}`` -> a regex where each variable is one non-empty dotted segment."""
    out, pos = [], 0
    for m in re.finditer(r"\{[a-z_]+\}", template):
        out.append(re.escape(template[pos:m.start()]))
        out.append(r"[^.]+")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return "".join(out)


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


def parse_tags(tags: list[str], kind: Kind | None = None) -> Labels:
    """InfluxDB-style ``tag=value`` items as sorted labels (empty values left out); raises ``bad_tag``."""
    labels: dict[str, str] = {}
    for tag in tags:
        key, eq, value = tag.partition("=")
        name = prom_name(key) if key.strip() else ""  # a label name: the metric names' rule
        if not eq or not name.strip("_") or name.startswith("__") or (kind == "timer" and name == "le"):
            raise MalformedLine("bad_tag", repr(tag))
        if name in labels:
            raise MalformedLine("bad_tag", f"{name} given twice")
        labels[name] = value
    return tuple(sorted((k, v) for k, v in labels.items() if v))


def parse_line(line: str) -> StatsdSample:
    """Parse ``name[,tag=value...]:value|type[|@rate]``; raises :class:`MalformedLine` naming what is wrong."""
    if len(line) > MAX_LINE:
        raise MalformedLine("too_long", f"{len(line)} characters")
    tagged, sep, rest = line.partition(":")
    if not sep or not rest:
        raise MalformedLine("syntax", "no ':' between name and value")
    stat, *tags = tagged.split(",")
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
    return StatsdSample(name, kind, value, rate, delta=kind == "gauge" and raw[:1] in "+-",
                        labels=parse_tags(tags, kind), stat=stat.strip())


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
                 clock: Callable[[], float] = time.monotonic, drop_legacy: bool = True,
                 prefix: str = "airflow") -> None:
        self.series_limit = series_limit
        self._legacy = legacy_matcher(prefix) if drop_legacy else None
        self.bounds = tuple(sorted(buckets))
        self._lock = threading.Lock()
        self._kinds: dict[str, Kind] = {}
        # every sample name exposed -> the StatsD name that owns it (the bridge's own series first)
        self._taken: dict[str, str] = {n: "statsd_bridge" for n in OWN_SERIES}
        self._labelnames: dict[str, set[str]] = {}  # a family's label names: every tag name it came with
        self._counters: dict[tuple[str, Labels], float] = {}
        self._gauges: dict[tuple[str, Labels], float] = {}
        self._timers: dict[tuple[str, Labels], _Timer] = {}
        self._stores: dict[Kind, dict[tuple[str, Labels], Any]] = {"counter": self._counters, "gauge": self._gauges,
                                                                    "timer": self._timers}
        self.packets = 0
        self.lines = 0
        self.malformed = dict.fromkeys(REASONS, 0)
        self.legacy_skipped = dict.fromkeys(LEGACY_NAMES, 0) if drop_legacy else {}
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
        """Translate one line: 1 if accepted, 0 if it was malformed (counted, logged) or a legacy duplicate
        (counted)."""
        try:
            sample = parse_line(line.strip())
            tagged = self._legacy(sample.stat) if self._legacy is not None else None
            if tagged is not None:
                with self._lock:
                    self.legacy_skipped[tagged] += 1
                return 0
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

    def _series(self) -> int:
        return len(self._counters) + len(self._gauges) + len(self._timers)

    def _claim(self, s: StatsdSample, key: tuple[str, Labels]) -> None:
        """Register a new series: its name must not be taken by another type, and the limit holds."""
        known = self._kinds.get(s.name)
        if known is not None and known != s.kind:
            raise MalformedLine("type_conflict", f"{s.name} is a {known}, not a {s.kind}")
        family = exported_name(s.name, s.kind)
        samples = [family] if s.kind != "timer" else [f"{family}_{x}" for x in ("bucket", "sum", "count")]
        if known is None:
            clash = next((self._taken[n] for n in (family, *samples) if n in self._taken), None)
            if clash is not None:
                raise MalformedLine("type_conflict", f"{family} is already exposed for {clash}")
        store = self._stores[s.kind]
        if key not in store and self._series() >= self.series_limit:
            raise MalformedLine("series_limit", f"{self.series_limit} series already")
        if known is None:
            self._kinds[s.name] = s.kind
            for n in (family, *samples):
                self._taken[n] = s.name
        self._labelnames.setdefault(s.name, set()).update(k for k, _ in s.labels)

    def _record(self, s: StatsdSample) -> None:
        key = (s.name, s.labels)
        self._claim(s, key)
        if s.kind == "counter":
            self._counters[key] = self._counters.get(key, 0.0) + s.value / s.rate
        elif s.kind == "gauge":
            self._gauges[key] = (self._gauges.get(key, 0.0) + s.value) if s.delta else s.value
        else:
            timer = self._timers.setdefault(key, _Timer([0.0] * (len(self.bounds) + 1)))
            seconds, weight = s.value / 1000.0, 1.0 / s.rate
            timer.buckets[bisect.bisect_left(self.bounds, seconds)] += weight
            timer.total += seconds * weight
            timer.count += weight

    def collect(self) -> Iterator[Any]:
        with self._lock:
            counters, gauges = dict(self._counters), dict(self._gauges)
            timers = {k: _Timer(list(t.buckets), t.total, t.count) for k, t in self._timers.items()}
            packets, lines, malformed = self.packets, self.lines, dict(self.malformed)
            legacy = dict(self.legacy_skipped)
            labelnames = {n: sorted(ls) for n, ls in self._labelnames.items()}
        for kind, store in (("counter", counters), ("gauge", gauges), ("timer", timers)):
            by_name = itertools.groupby(sorted(store.items(), key=lambda kv: kv[0]), key=lambda kv: kv[0][0])
            for name, series in by_name:
                names = labelnames[name]
                family = _family(kind, name, names)  # type: ignore[arg-type]
                for (_, labels), value in series:
                    values = [dict(labels).get(n, "") for n in names]
                    if isinstance(value, _Timer):
                        family.add_metric(values, self._cumulative(value), sum_value=value.total)
                    else:
                        family.add_metric(values, value)
                yield family
        yield CounterMetricFamily("statsd_bridge_packets", "StatsD datagrams received", value=packets)
        yield CounterMetricFamily("statsd_bridge_lines", "StatsD lines translated", value=lines)
        bad = CounterMetricFamily("statsd_bridge_malformed", "StatsD lines dropped, by reason", labels=["reason"])
        for reason, n in sorted(malformed.items()):
            bad.add_metric([reason], n)
        yield bad
        skipped = CounterMetricFamily("statsd_bridge_legacy_skipped", "Airflow legacy-named lines skipped, by the "
                                      "tagged metric carrying the same data", labels=["metric"])
        for metric, n in sorted(legacy.items()):
            skipped.add_metric([metric], n)
        yield skipped
        yield GaugeMetricFamily("statsd_bridge_series", "StatsD series held", value=len(counters) + len(gauges)
                                + len(timers))

    def _cumulative(self, t: _Timer) -> list[tuple[str, float]]:
        cumulative, running = [], 0.0
        for bound, n in zip((*self.bounds, math.inf), t.buckets, strict=True):
            running += n
            cumulative.append((floatToGoString(bound), running))  # "1.0", "+Inf": as prometheus_client's own
        return cumulative


def _family(kind: Kind, name: str, labels: list[str]) -> Any:
    exported = exported_name(name, kind)
    if kind == "counter":
        return CounterMetricFamily(exported, f"StatsD counter {name}", labels=labels)
    if kind == "gauge":
        return GaugeMetricFamily(exported, f"StatsD gauge {name}", labels=labels)
    return HistogramMetricFamily(exported, f"StatsD timer {name} (seconds)", labels=labels)


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
