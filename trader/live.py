"""The streaming trader: Kafka ``market.ohlcv`` + ``signals`` -> the same engine as the backtest.

A :class:`LiveTrader` reads records from a :class:`Source` (Kafka in production, a list in
tests), decodes them with the shared message schemas (a record that fails goes to
``dlq.<topic>`` with the reason), and releases them to the engine in
:func:`trader.engine.event_sort_key` order once every input stream has moved past their
``available_time`` (a watermark: the minimum over streams of the latest time seen). So the
engine sees exactly the order a backtest over the same data would, whatever order the two
topics arrive in, and the two give identical fills.

After each batch the engine's changes are written to the store and only then are the
offsets committed; an offset is committed only once every record before it in its
partition has been processed. A run (``run_id``) always replays its topics (from the
beginning, or from ``start_time``) and replaces what the store holds for it. It stops on a
stop event, after ``max_idle_s`` without new records (processing everything buffered), or
once it has processed the bar that opens at ``until_bar_time``.

What a run trades is decided by :class:`trader.filters.EventFilter`, exactly as in the
backtest: the config's instruments, events from ``start_time``, and one ``model_version``'s
signals. With ``start_time`` each partition is first sought with ``offsets_for_times`` to
``start_time - seek_margin_s``. That is conservative: a record's Kafka timestamp is its
produce time (or its event time when the producer sets it), never before its ``event_time``,
so no record of the run lies before the sought offset; records read before ``start_time``
(replayed history has recent produce times) are then dropped on their payload's
``event_time`` and counted (``before_start``), as are other instruments and other model
versions. None of these is dead-lettered: they are valid, just not this run's.
"""

from __future__ import annotations

import functools
import heapq
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from cryptolake import topics
from cryptolake.errors import DataValidationError
from cryptolake.logs import get_logger
from cryptolake.retry import call_with_retry
from cryptolake.schemas import OhlcvV1, SignalV1, validate_for_topic
from cryptolake.settings import Settings, get_settings
from cryptolake.types import from_ms
from trader.backtest import build_engine, metrics_for, persist
from trader.config import TraderConfig, TraderSettings
from trader.domain import Bar, Signal, timeframe_delta
from trader.engine import Engine, Event, event_sort_key
from trader.filters import EventFilter
from trader.results import LiveResult, RunResult
from trader.store import TradeStore

log = get_logger(__name__)
INPUT_TOPICS = (topics.MARKET_OHLCV, topics.SIGNALS)


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
    """Reads ``topic_names`` with manual assignment from the beginning, or from ``seek_time``
    (the first offset whose Kafka timestamp is at or after it); commits explicit offsets."""

    def __init__(
        self,
        topic_names: Iterable[str],
        *,
        group_id: str,
        settings: Settings | None = None,
        seek_time: datetime | None = None,
        max_poll_records: int = 500,
    ) -> None:
        from kafka.structs import TopicPartition

        from cryptolake.bus import consumer, ensure_topics

        settings = settings or get_settings()
        names = list(topic_names)
        ensure_topics(names, settings)
        self._consumer = consumer(group_id=group_id, settings=settings, max_poll_records=max_poll_records)
        parts = []
        for name in names:
            ids = call_with_retry(functools.partial(self._partitions, name), what=f"partitions of {name}")
            parts += [TopicPartition(name, p) for p in sorted(ids)]
        self._consumer.assign(parts)
        self.start_offsets: dict[tuple[str, int], int | None] = {}
        if seek_time is None:
            self._consumer.seek_to_beginning(*parts)
        else:
            self._seek(parts, seek_time)

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


def decode(record: Record, payload: Any = None) -> Event:
    """A record (or its already parsed ``payload``) as a Bar or Signal, or DataValidationError naming what is wrong."""
    if payload is None:
        payload = parse(record)
    msg = validate_for_topic(record.topic, payload)
    if isinstance(msg, OhlcvV1):
        return Bar(
            msg.exchange,
            msg.symbol,
            msg.timeframe,
            from_ms(msg.event_time),
            from_ms(msg.available_time),
            msg.open,
            msg.high,
            msg.low,
            msg.close,
            msg.volume,
        )
    if isinstance(msg, SignalV1):
        return Signal(
            msg.exchange,
            msg.symbol,
            msg.timeframe,
            from_ms(msg.event_time),
            msg.probability,
            msg.direction,
            msg.model_version,
            from_ms(msg.available_time),
            msg.signal_id,
        )
    raise DataValidationError("topic", record.topic, "the trader does not consume this topic")


@dataclass(order=True)
class _Pending:
    key: tuple[datetime, int, str, datetime]
    event: Event = field(compare=False)
    record: Record = field(compare=False)


class EventOrderer:
    """Buffers events and releases them in sort-key order behind a per-stream watermark."""

    def __init__(self, streams: Iterable[tuple[str, str]]) -> None:
        self.latest: dict[tuple[str, str], datetime | None] = {s: None for s in streams}
        self._heap: list[_Pending] = []
        self._keys: set[tuple[datetime, int, str, datetime]] = set()

    def push(self, stream: tuple[str, str], event: Event, record: Record) -> bool:
        """Buffer an event; False if the same event is already buffered (a duplicate)."""
        key = event_sort_key(event)
        if key in self._keys:
            return False
        avail = key[0]
        prev = self.latest[stream]
        self.latest[stream] = avail if prev is None else max(prev, avail)
        heapq.heappush(self._heap, _Pending(key, event, record))
        self._keys.add(key)
        return True

    def watermark(self) -> datetime | None:
        """Events with available_time at or before this are safe to process."""
        times = list(self.latest.values())
        if any(t is None for t in times):
            return None
        return min(t for t in times if t is not None)

    def pop_ready(self, *, flush: bool = False, limit: datetime | None = None) -> list[_Pending]:
        """Release ready events in order (``flush``: everything buffered); never past ``limit``."""
        wm = None if flush else self.watermark()
        out: list[_Pending] = []
        while self._heap:
            head = self._heap[0]
            if limit is not None and head.key[0] > limit:
                break
            if not flush and (wm is None or head.key[0] > wm):
                break
            heapq.heappop(self._heap)
            self._keys.discard(head.key)
            out.append(head)
        return out

    def pop_ready_preview(self, limit: datetime) -> bool:
        """Whether an event at or before ``limit`` is still buffered."""
        return bool(self._heap) and self._heap[0].key[0] <= limit

    def buffered(self) -> list[Record]:
        return [p.record for p in self._heap]


@dataclass
class LiveStats:
    """Counters of one live run."""

    records: int = 0
    events: int = 0
    dead_lettered: int = 0
    duplicates: int = 0
    other_instruments: int = 0
    other_model_versions: int = 0
    before_start: int = 0
    after_end: int = 0  # buffered past until_bar_time, never processed
    checkpoints: int = 0
    stopped_by: str = ""


class LiveTrader:
    """Drives an engine from a record source; persists, then commits, after every batch."""

    def __init__(
        self,
        config: TraderConfig,
        *,
        run_id: str,
        store: TradeStore,
        source: Source,
        dead_letters: DeadLetters,
        poll_timeout_ms: int = 500,
        monotonic: Callable[[], float] = time.monotonic,
        event_filter: EventFilter | None = None,
    ) -> None:
        self.config = config
        self.run_id = run_id
        self.store = store
        self.source = source
        self.dead_letters = dead_letters
        self.poll_timeout_ms = poll_timeout_ms
        self.monotonic = monotonic
        self.engine: Engine = build_engine(config)
        self.filter = event_filter or EventFilter.for_run(config)
        self.orderer = EventOrderer([(t, inst.key) for t in INPUT_TOPICS for inst in config.instruments])
        self.stats = LiveStats()
        self._seen: dict[tuple[str, int], int] = {}  # next offset after the last record seen
        self._committed: dict[tuple[str, int], int] = {}

    def _reject(self, record: Record, reason: str) -> None:
        self.stats.dead_lettered += 1
        log.warning("live.dead_letter", extra={"topic": record.topic, "offset": record.offset, "reason": reason})
        self.dead_letters.dead_letter(record.topic, record.key or "", record.value, reason)

    def ingest(self, records: Iterable[Record]) -> None:
        """Decode and buffer records (bad ones are dead-lettered with the reason)."""
        for rec in records:
            self.stats.records += 1
            tp = (rec.topic, rec.partition)
            self._seen[tp] = max(self._seen.get(tp, 0), rec.offset + 1)
            try:
                payload = parse(rec)
                skip = self.filter.skip_payload(payload, is_signal=rec.topic == topics.SIGNALS)
                if skip is not None:
                    setattr(self.stats, str(skip), getattr(self.stats, str(skip)) + 1)
                    continue
                event = decode(rec, payload)
            except DataValidationError as exc:
                self._reject(rec, str(exc))
                continue
            skip = self.filter.skip_reason(event, check_end=False)  # past-the-end events wait in the buffer
            if skip is not None:
                setattr(self.stats, str(skip), getattr(self.stats, str(skip)) + 1)
                continue
            last = self.engine._last_key
            key = event_sort_key(event)
            if last is not None and key <= last:
                self._reject(
                    rec,
                    f"late: {key[0].isoformat()} is at or before the last processed event {last[0].isoformat()}",
                )
                continue
            if not self.orderer.push((rec.topic, event.instrument_key), event, rec):
                self.stats.duplicates += 1
                log.info("live.duplicate", extra={"topic": rec.topic, "offset": rec.offset})

    def process_ready(self, *, flush: bool = False, limit: datetime | None = None) -> int:
        """Feed released events to the engine; returns how many."""
        ready = self.orderer.pop_ready(flush=flush, limit=limit)
        for p in ready:
            self.engine.on_event(p.event)
        self.stats.events += len(ready)
        return len(ready)

    def checkpoint(self, *, status: str = "running") -> None:
        """Persist the engine's changes, then commit every offset whose predecessors are all processed."""
        persist(self.store, self.run_id, self.engine, status=status)
        pending: dict[tuple[str, int], int] = {}
        for rec in self.orderer.buffered():
            tp = (rec.topic, rec.partition)
            pending[tp] = min(pending.get(tp, rec.offset), rec.offset)
        offsets = {tp: pending.get(tp, nxt) for tp, nxt in self._seen.items()}
        offsets = {tp: o for tp, o in offsets.items() if self._committed.get(tp) != o}
        self.source.commit(offsets)
        self._committed.update(offsets)
        self.stats.checkpoints += 1

    def _reached(self, limit: datetime | None) -> bool:
        """True once every event up to ``limit`` has certainly arrived and been processed."""
        if limit is None:
            return False
        wm = self.orderer.watermark()
        return wm is not None and wm >= limit and not self.orderer.pop_ready_preview(limit)

    def run(
        self,
        *,
        stop_event: threading.Event | None = None,
        until_bar_time: datetime | None = None,
        max_idle_s: float = 30.0,
    ) -> Engine:
        """Consume until stopped (event, idle timeout, or ``until_bar_time`` processed)."""
        limit = None
        if until_bar_time is not None:
            limit = until_bar_time + timeframe_delta(self.config.timeframe)
        elif self.filter.end_available_time is not None:
            limit = self.filter.end_available_time
        self.engine.start()
        last_data = self.monotonic()
        while True:
            if stop_event is not None and stop_event.is_set():
                self.stats.stopped_by = "stop_event"
                break
            records = self.source.poll(self.poll_timeout_ms)
            now = self.monotonic()
            if records:
                last_data = now
                self.ingest(records)
            processed = self.process_ready(limit=limit)
            if processed:
                self.checkpoint()
                log.info("live.progress", extra={"events": self.stats.events, "fills": len(self.engine.fills)})
            if self._reached(limit):
                self.stats.stopped_by = "until_bar_time"
                break
            if not records and now - last_data >= max_idle_s:
                self.stats.stopped_by = "idle"
                break
        # everything received that is not past the limit can be processed now
        self.process_ready(flush=True, limit=limit)
        self.stats.after_end = len(self.orderer.buffered())
        self.checkpoint(status="stopped")
        log.info(
            "live.stopped",
            extra={
                "run_id": self.run_id,
                "by": self.stats.stopped_by,
                "events": self.stats.events,
                "fills": len(self.engine.fills),
            },
        )
        return self.engine


def run_live(
    config: TraderConfig,
    *,
    settings: Settings | None = None,
    run_id: str,
    store_url: str | None = None,
    until_bar_time: datetime | None = None,
    max_idle_s: float | None = None,
    stop_event: threading.Event | None = None,
    source: Source | None = None,
    dead_letters: DeadLetters | None = None,
    start_time: datetime | None = None,
    model_version: str | None = None,
) -> LiveResult:
    """Paper-trade ``config`` from Kafka (or ``source``) until stopped; store the run under ``run_id``.

    ``start_time``: events with an earlier ``event_time`` are not traded (Kafka is sought there
    first); ``model_version``: only that model's signals are traded; ``until_bar_time``: the
    open time of the last bar to process. The same arguments to :func:`trader.backtest.run_backtest`
    select the same events, so the two give identical fills.
    """
    settings = settings or get_settings()
    tsettings = TraderSettings()
    flt = EventFilter.for_run(config, start_time=start_time, until_bar_time=until_bar_time, model_version=model_version)
    store = TradeStore(store_url or tsettings.resolved_store_url(settings))
    store.begin_run(run_id, "live", config.model_dump(mode="json"))
    own_source = source is None
    seek = None if start_time is None else start_time - timedelta(seconds=tsettings.seek_margin_s)
    src: Source = source or KafkaSource(
        INPUT_TOPICS,
        group_id=f"{tsettings.group_prefix}.{run_id}",
        settings=settings,
        seek_time=seek,
        max_poll_records=tsettings.max_poll_records,
    )
    dlq: DeadLetters = dead_letters or KafkaDeadLetters(settings)
    trader = LiveTrader(
        config,
        run_id=run_id,
        store=store,
        source=src,
        dead_letters=dlq,
        poll_timeout_ms=tsettings.poll_timeout_ms,
        event_filter=flt,
    )
    try:
        engine = trader.run(
            stop_event=stop_event,
            until_bar_time=until_bar_time,
            max_idle_s=max_idle_s if max_idle_s is not None else tsettings.max_idle_s,
        )
    finally:
        if own_source:
            src.close()
        if isinstance(dlq, KafkaDeadLetters):
            dlq.close()
    result = RunResult.from_engine(run_id, engine, metrics_for(engine, config), vars(trader.stats))
    return LiveResult(**vars(result))
