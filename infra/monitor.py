"""What ``cryptolake monitor`` exports: consumer lag per topic and group, and freshness per Delta table.

Collected at scrape time (a custom collector, so a scrape sees the lake and the broker as they are
now, and nothing runs between scrapes):

- ``cryptolake_consumer_lag_messages{topic, group}``: end offset minus the group's committed offset,
  summed over partitions, for every consumer group with committed offsets (Kafka admin API).
  Structured Streaming keeps its offsets in its checkpoint, not in a group: its lag is the landing's.
- ``cryptolake_table_last_commit_timestamp_seconds{table}`` and ``cryptolake_table_commit_age_seconds``:
  the Delta log's last commit time, and its age at scrape time.
- ``cryptolake_table_max_event_timestamp_seconds{table}`` and ``cryptolake_table_event_age_seconds``:
  the largest event time (``event_time``, ``open_time``, ``ts`` or ``close_time``, the first the table
  has) from the Delta file statistics: no data scan.
- ``cryptolake_monitor_errors_total{source}``: a broker or table that could not be read (never silent).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from cryptolake.logs import get_logger
from cryptolake.settings import Settings

log = get_logger(__name__)
EVENT_TIME_COLUMNS = ("event_time", "open_time", "ts", "close_time")


def table_freshness(path: str) -> tuple[float, float | None]:
    """(last commit as epoch seconds, max event time as epoch seconds or None) of one Delta table."""
    from deltalake import DeltaTable

    table = DeltaTable(path)
    committed = int(table.history(1)[0]["timestamp"]) / 1000.0
    names = {f.name for f in table.schema().fields}
    column = next((c for c in EVENT_TIME_COLUMNS if c in names), None)
    if column is None:
        return committed, None
    import pyarrow as pa

    actions = pa.table(table.get_add_actions(flatten=True)).to_pydict()  # arro3 -> pyarrow (Arrow C stream)
    values = [v for v in actions.get(f"max.{column}", []) if v is not None]
    if not values:
        return committed, None
    newest = max(values)
    if isinstance(newest, datetime):
        return committed, newest.timestamp()
    return committed, float(newest) / (1000.0 if float(newest) > 1e11 else 1.0)  # epoch ms or s


def consumer_lag(settings: Settings) -> dict[tuple[str, str], int]:
    """``{(topic, group): lag}`` for every consumer group with committed offsets."""
    from kafka import KafkaConsumer

    from cryptolake.bus import _admin, bootstrap_servers

    out: dict[tuple[str, str], int] = {}
    with _admin(settings) as admin:
        groups = [g[0] if isinstance(g, tuple) else g.group_id for g in admin.list_consumer_groups()]
        committed = {g: admin.list_consumer_group_offsets(g) for g in groups}
    partitions = {tp for offsets in committed.values() for tp in offsets}
    if not partitions:
        return out
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers(settings), client_id="cryptolake-monitor")
    try:
        ends = consumer.end_offsets(list(partitions))
    finally:
        consumer.close()
    for group, offsets in committed.items():
        for tp, meta in offsets.items():
            if meta.offset >= 0:
                key = (tp.topic, group)
                out[key] = out.get(key, 0) + max(0, int(ends.get(tp, meta.offset)) - int(meta.offset))
    return out


class MonitorCollector(Collector):
    """Reads the broker and the lake on every scrape (see the module docstring for the series)."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time,
                 kafka: bool = True) -> None:
        self.settings, self.clock, self.kafka = settings, clock, kafka
        self.errors: dict[str, int] = {}

    def _error(self, source: str, exc: Exception) -> None:
        self.errors[source] = self.errors.get(source, 0) + 1
        log.warning("monitor.read_failed", extra={"source": source, "error": str(exc)[:300]})

    def collect(self) -> Iterator[Any]:
        from cryptolake.duck import lake_tables

        now = self.clock()
        commit = GaugeMetricFamily("cryptolake_table_last_commit_timestamp_seconds", "Last Delta commit",
                                   labels=["table"])
        commit_age = GaugeMetricFamily("cryptolake_table_commit_age_seconds", "Seconds since the last Delta commit",
                                       labels=["table"])
        event = GaugeMetricFamily("cryptolake_table_max_event_timestamp_seconds", "Newest event time in the table",
                                  labels=["table"])
        event_age = GaugeMetricFamily("cryptolake_table_event_age_seconds", "Seconds since the newest event time",
                                      labels=["table"])
        try:
            tables = lake_tables(self.settings)
        except Exception as exc:  # the lake root unreadable: counted and logged, the scrape goes on
            self._error("lake", exc)
            tables = {}
        for name, path in tables.items():
            try:
                committed, newest = table_freshness(path)
            except Exception as exc:
                self._error(f"table:{name}", exc)
                continue
            commit.add_metric([name], committed)
            commit_age.add_metric([name], max(0.0, now - committed))
            if newest is not None:
                event.add_metric([name], newest)
                event_age.add_metric([name], max(0.0, now - newest))
        yield from (commit, commit_age, event, event_age)
        lag = GaugeMetricFamily("cryptolake_consumer_lag_messages", "Messages a consumer group is behind",
                                labels=["topic", "group"])
        if self.kafka:
            try:
                for (topic, group), n in sorted(consumer_lag(self.settings).items()):
                    lag.add_metric([topic, group], n)
            except Exception as exc:
                self._error("kafka", exc)
        yield lag
        errors = CounterMetricFamily("cryptolake_monitor_errors", "Sources the monitor could not read",
                                     labels=["source"])
        for source, n in sorted(self.errors.items()):
            errors.add_metric([source], n)
        yield errors


def monitor_registry(settings: Settings, **kwargs: Any) -> CollectorRegistry:
    """A registry of its own holding the :class:`MonitorCollector` (served by ``cryptolake.metrics``)."""
    registry = CollectorRegistry()
    registry.register(MonitorCollector(settings, **kwargs))
    return registry
