"""The Kafka side of the paper/live feed: records in, offsets committed, dead letters out.

:class:`KafkaSource` reads topics with manual assignment from the beginning, from a seek
time (``offsets_for_times``) or from the group's committed offsets less some records (a resume);
:class:`KafkaDeadLetters` sends undecodable records to ``dlq.<topic>`` with the reason. Tests replace
both with lists through the :class:`Source` and :class:`DeadLetters` protocols. kafka-python errors are
translated at this boundary (:func:`cryptolake.bus.translate_kafka_error`) and retried only when retryable.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from cryptolake.errors import DataValidationError
from cryptolake.logs import get_logger
from cryptolake.retry import call_with_retry
from cryptolake.settings import Settings, get_settings

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed message."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: str


class Source(Protocol):
    """Where records come from: Kafka, or a list in tests."""

    def poll(self, timeout_ms: int) -> list[Record]: ...

    def commit(self, offsets: dict[tuple[str, int], int]) -> None: ...

    def close(self) -> None: ...


class DeadLetters(Protocol):
    """Where undecodable or late records go, with the reason."""

    def dead_letter(self, topic: str, key: str, raw: str, reason: str) -> None: ...


class KafkaSource:
    """Reads ``topic_names`` with manual assignment from the beginning, from ``seek_time`` (the first
    offset whose Kafka timestamp is at or after it) or, with ``resume_records``, that many records before
    ``group_id``'s committed offset of each partition (the beginning when none); commits explicit offsets.
    ``invalid_utf8="replace"``: undecodable bytes arrive as U+FFFD, to be dead-lettered."""

    def __init__(
        self,
        topic_names: Iterable[str],
        *,
        group_id: str,
        settings: Settings | None = None,
        seek_time: datetime | None = None,
        resume_records: int | None = None,
        max_poll_records: int = 500,
        invalid_utf8: str = "strict",
    ) -> None:
        from kafka.structs import TopicPartition

        from cryptolake.bus import consumer, ensure_topics

        settings = settings or get_settings()
        names = list(topic_names)
        ensure_topics(names, settings)
        self._consumer = consumer(group_id=group_id, settings=settings, invalid_utf8=invalid_utf8,
                                  max_poll_records=max_poll_records)
        parts = []
        for name in names:
            ids = call_with_retry(functools.partial(self._partitions, name), what=f"partitions of {name}")
            parts += [TopicPartition(name, p) for p in sorted(ids)]
        self._consumer.assign(parts)
        self.start_offsets: dict[tuple[str, int], int | None] = {}
        if resume_records is not None:
            self._resume(parts, resume_records, group_id)
        elif seek_time is None:
            self._consumer.seek_to_beginning(*parts)
        else:
            self._seek(parts, seek_time)

    def _resume(self, parts: list[Any], records: int, group_id: str) -> None:
        from cryptolake.bus import translate_kafka_error

        for tp in parts:
            try:
                committed = self._consumer.committed(tp)
            except Exception as exc:
                raise translate_kafka_error(exc, f"committed offset of {tp.topic}:{tp.partition}") from exc
            if committed is None or int(committed) < 0:
                self._consumer.seek_to_beginning(tp)
                self.start_offsets[(tp.topic, tp.partition)] = None
            else:
                start = max(0, int(committed) - records)
                self._consumer.seek(tp, start)
                self.start_offsets[(tp.topic, tp.partition)] = start
        log.info("kafka.resume", extra={"group_id": group_id, "offsets": {
            f"{t}:{p}": o for (t, p), o in self.start_offsets.items()}})

    def _seek(self, parts: list[Any], seek_time: datetime) -> None:
        from cryptolake.bus import translate_kafka_error

        ms = int(seek_time.timestamp() * 1000)

        def lookup() -> dict[Any, Any]:
            try:
                found: dict[Any, Any] = self._consumer.offsets_for_times({tp: ms for tp in parts})
                return found
            except Exception as exc:
                raise translate_kafka_error(exc, "offsets_for_times") from exc

        found = call_with_retry(lookup, what="kafka offsets_for_times")
        for tp in parts:
            hit = found.get(tp)
            if hit is None:  # nothing at or after seek_time yet: start at the end
                self._consumer.seek_to_end(tp)
                self.start_offsets[(tp.topic, tp.partition)] = None
            else:
                self._consumer.seek(tp, hit.offset)
                self.start_offsets[(tp.topic, tp.partition)] = hit.offset
        log.info(
            "live.seek",
            extra={
                "seek_time": seek_time.isoformat(),
                "offsets": {f"{t}:{p}": o for (t, p), o in self.start_offsets.items()},
            },
        )

    def _partitions(self, name: str) -> set[int]:
        from cryptolake.bus import translate_kafka_error
        from cryptolake.errors import BrokerUnavailableError

        try:
            ids = self._consumer.partitions_for_topic(name)
        except Exception as exc:
            raise translate_kafka_error(exc, f"partitions of {name}") from exc
        if not ids:
            raise BrokerUnavailableError(f"no partition metadata yet for topic {name}")
        return set(ids)

    def poll(self, timeout_ms: int) -> list[Record]:
        from cryptolake.bus import translate_kafka_error

        def once() -> list[Record]:
            try:
                batches = self._consumer.poll(timeout_ms=timeout_ms)
            except Exception as exc:
                raise translate_kafka_error(exc, "poll") from exc
            return [
                Record(tp.topic, tp.partition, r.offset, r.key, r.value) for tp, recs in batches.items() for r in recs
            ]

        return call_with_retry(once, what="kafka poll")

    def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        from kafka.structs import OffsetAndMetadata, TopicPartition

        from cryptolake.bus import translate_kafka_error

        if not offsets:
            return
        payload = {TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()}

        def once() -> None:
            try:
                self._consumer.commit(payload)
            except Exception as exc:
                raise translate_kafka_error(exc, "commit") from exc

        call_with_retry(once, what="kafka commit")

    def close(self) -> None:
        self._consumer.close()


class KafkaDeadLetters:
    """Dead-letters through the shared producer (created on first use)."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings
        self._producer: Any = None

    def dead_letter(self, topic: str, key: str, raw: str, reason: str) -> None:
        from cryptolake.bus import Producer

        if self._producer is None:
            self._producer = Producer(self.settings, client_id="cryptolake-trader")
        self._producer.dead_letter(topic, key, raw, reason)
        self._producer.flush()

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()


def parse(record: Record) -> Any:
    """The record's JSON payload, or DataValidationError."""
    try:
        return json.loads(record.value)
    except json.JSONDecodeError as exc:
        raise DataValidationError("value", record.value[:200], f"not JSON: {exc}") from exc
