"""What a topic already carries, per key: the high-water mark a replay resumes after.

A replay must not publish a candle twice, and it must not need the landing job to know what it
published. The high-water mark of a key is the latest ``event_time`` published for it: the maximum
over what bronze holds (read with DuckDB over Delta) and over the records after bronze's last
landed offset of each partition, read from Kafka itself (the tail not landed yet). So a re-run of
an interval publishes nothing new whether or not the landing ran in between.
"""

from __future__ import annotations

import json
from typing import Any

from cryptolake.bus import consumer, translate_kafka_error
from cryptolake.logs import get_logger
from cryptolake.retry import call_with_retry
from cryptolake.settings import Settings
from cryptolake.tables import bronze_spec

log = get_logger(__name__)


def _landed(topic: str, settings: Settings) -> tuple[dict[str, int], dict[int, int]]:
    """Per key the latest landed event time (ms), and per partition the last landed offset."""
    from cryptolake import duck

    view = duck.view_name(bronze_spec(topic).name)
    con = duck.connect(settings)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if view not in tables:
            return {}, {}
        keys = con.execute(f"SELECT key, max(epoch_ms(event_time)) FROM {view} GROUP BY key").fetchall()
        offsets = con.execute(f'SELECT "partition", max("offset") FROM {view} GROUP BY 1').fetchall()
    finally:
        con.close()
    return {str(k): int(t) for k, t in keys}, {int(p): int(o) for p, o in offsets}


def _tail(topic: str, after: dict[int, int], settings: Settings) -> dict[str, int]:
    """Per key the latest ``event_time`` among the records after ``after`` (the un-landed tail)."""
    from kafka.structs import TopicPartition

    cons: Any = consumer(group_id=None, settings=settings, consumer_timeout_ms=2000)
    latest: dict[str, int] = {}
    try:
        def assign() -> dict[Any, int]:
            try:
                parts = [TopicPartition(topic, p) for p in sorted(cons.partitions_for_topic(topic) or ())]
                cons.assign(parts)
                ends: dict[Any, int] = cons.end_offsets(parts)
                return ends
            except Exception as exc:
                raise translate_kafka_error(exc, f"offsets of {topic}") from exc

        ends = call_with_retry(assign, what=f"kafka offsets of {topic}")
        remaining = 0
        for tp, end in ends.items():
            start = after.get(tp.partition, -1) + 1
            if start < end:
                cons.seek(tp, start)
                remaining += end - start
            else:
                cons.pause(tp)
        while remaining > 0:
            batches = cons.poll(timeout_ms=1000)
            if not batches:
                break
            for tp, records in batches.items():
                for rec in records:
                    if rec.offset >= ends[tp]:
                        continue
                    remaining -= 1
                    try:
                        event = int(json.loads(rec.value)["event_time"])
                    except (ValueError, KeyError, TypeError):
                        continue  # not a valid payload: the landing job quarantines it; it marks nothing
                    if rec.key is not None:
                        latest[rec.key] = max(latest.get(rec.key, event), event)
    finally:
        cons.close()
    return latest


def high_water_marks(topic: str, settings: Settings) -> dict[str, int]:
    """The latest published ``event_time`` (epoch ms) per key of ``topic``: landed or still in Kafka."""
    landed, offsets = _landed(topic, settings)
    tail = _tail(topic, offsets, settings)
    marks = dict(landed)
    for key, t in tail.items():
        marks[key] = max(marks.get(key, t), t)
    log.info("published.high_water", extra={"topic": topic, "keys": len(marks), "unlanded_keys": len(tail)})
    return marks
