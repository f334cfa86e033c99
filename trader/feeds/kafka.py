"""The Kafka feed: ``market.ohlcv`` + ``signals`` records in, ordered event batches out.

Records are decoded with the shared message schemas (a record that fails goes to
``dlq.<topic>`` with the reason) and candles through :func:`~trader.feeds.base.decode_bar`, the
same rule the frame feed applies. Events are released in
:func:`~trader.feeds.base.event_sort_key` order once every input stream has moved past their
``available_time`` (a watermark: the minimum over streams of the latest time seen), so the node
sees exactly the order a backtest over the same data would, whatever order the two topics
arrive in.

The node persists what a batch changed and then calls :meth:`KafkaFeed.commit`; an offset is
committed only once every record before it in its partition has been processed. The feed stops
on a stop event, after ``max_idle_s`` without new records (releasing everything buffered), or
once it has released the bar that opens at ``until_bar_time``.

What a run trades is decided by :class:`trader.filters.EventFilter`, exactly as in the frame
feed. With a start time each partition is first sought with ``offsets_for_times`` to the warm-up
start less ``seek_margin_s``. That is conservative: a record's Kafka timestamp is its produce
time (or its event time when the producer sets it), never before its ``event_time``, so no
record of the run lies before the sought offset; records read before the run's window are then
dropped on their payload's ``event_time`` and counted (``before_start``), as are other
instruments and other model versions. None of these is dead-lettered: they are valid, just not
this run's.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from cryptolake import topics
from cryptolake.errors import DataValidationError
from cryptolake.logs import get_logger
from cryptolake.schemas import OhlcvV1, SignalV1, validate_for_topic
from cryptolake.types import from_ms
from trader.domain import Signal
from trader.feeds.base import Event, EventKey, decode_bar, event_sort_key
from trader.feeds.kafka_source import DeadLetters, Record, Source, parse
from trader.filters import EventFilter

log = get_logger(__name__)
INPUT_TOPICS = (topics.MARKET_OHLCV, topics.SIGNALS)


def decode(record: Record, payload: Any = None) -> Event:
    """A record (or its parsed ``payload``) as an event, or DataValidationError naming what is wrong."""
    if payload is None:
        payload = parse(record)
    msg = validate_for_topic(record.topic, payload)
    if isinstance(msg, OhlcvV1):
        return decode_bar(msg.exchange, msg.symbol, msg.timeframe, from_ms(msg.event_time),
                          msg.open, msg.high, msg.low, msg.close, msg.volume)
    if isinstance(msg, SignalV1):
        return Signal(msg.exchange, msg.symbol, msg.timeframe, from_ms(msg.event_time), msg.probability,
                      msg.direction, msg.model_version, from_ms(msg.available_time),
                      msg.signal_id)
    raise DataValidationError("topic", record.topic, "the trader does not consume this topic")


@dataclass(order=True)
class _Pending:
    key: EventKey
    event: Event = field(compare=False)
    record: Record = field(compare=False)


class EventOrderer:
    """Buffers events and releases them in sort-key order behind a per-stream watermark."""

    def __init__(self, streams: Iterable[tuple[str, str]]) -> None:
        self.latest: dict[tuple[str, str], datetime | None] = {s: None for s in streams}
        self._heap: list[_Pending] = []
        self._keys: set[EventKey] = set()

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
class KafkaFeedStats:
    """Counters of one Kafka feed."""

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


class KafkaFeed:
    """Ordered event batches from a record source; commits offsets once the node has persisted."""

    def __init__(
        self,
        source: Source,
        dead_letters: DeadLetters,
        event_filter: EventFilter,
        instrument_keys: Iterable[str],
        *,
        poll_timeout_ms: int = 500,
        max_idle_s: float = 30.0,
        stop_event: threading.Event | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.dead_letters = dead_letters
        self.filter = event_filter
        self.poll_timeout_ms = poll_timeout_ms
        self.max_idle_s = max_idle_s
        self.stop_event = stop_event
        self.monotonic = monotonic
        self.orderer = EventOrderer([(t, k) for t in INPUT_TOPICS for k in instrument_keys])
        self.counters = KafkaFeedStats()
        self._last: EventKey | None = None
        self._seen: dict[tuple[str, int], int] = {}  # next offset after the last record seen
        self._committed: dict[tuple[str, int], int] = {}
        self._received: dict[str, float] = {}  # signal id -> when its record arrived (monotonic), while buffered
        self._released: dict[str, float] = {}  # the same for the signals of the batch last released

    @property
    def stats(self) -> dict[str, int | str]:
        return dict(asdict(self.counters))

    def _reject(self, record: Record, reason: str) -> None:
        self.counters.dead_lettered += 1
        log.warning("feed.dead_letter", extra={"topic": record.topic, "offset": record.offset, "reason": reason})
        self.dead_letters.dead_letter(record.topic, record.key or "", record.value, reason)

    def _count(self, skip: Any) -> None:
        setattr(self.counters, str(skip), getattr(self.counters, str(skip)) + 1)

    def ingest(self, records: Iterable[Record]) -> None:
        """Decode and buffer records (bad ones are dead-lettered with the reason)."""
        arrived = self.monotonic()
        for rec in records:
            self.counters.records += 1
            tp = (rec.topic, rec.partition)
            self._seen[tp] = max(self._seen.get(tp, 0), rec.offset + 1)
            try:
                payload = parse(rec)
                skip = self.filter.skip_payload(payload, is_signal=rec.topic == topics.SIGNALS)
                if skip is not None:
                    self._count(skip)
                    continue
                event = decode(rec, payload)
            except DataValidationError as exc:
                self._reject(rec, str(exc))
                continue
            skip = self.filter.skip_reason(event, check_end=False)  # past-the-end events wait in the buffer
            if skip is not None:
                self._count(skip)
                continue
            key = event_sort_key(event)
            if self._last is not None and key <= self._last:
                self._reject(
                    rec,
                    f"late: {key[0].isoformat()} is at or before the last processed event {self._last[0].isoformat()}",
                )
                continue
            if not self.orderer.push((rec.topic, event.instrument_key), event, rec):
                self.counters.duplicates += 1
                log.info("feed.duplicate", extra={"topic": rec.topic, "offset": rec.offset})
            elif isinstance(event, Signal) and event.signal_id:
                self._received[event.signal_id] = arrived

    def _release(self, *, flush: bool = False, limit: datetime | None = None) -> list[Event]:
        ready = self.orderer.pop_ready(flush=flush, limit=limit)
        if ready:
            self._last = ready[-1].key
        self._released = {p.event.signal_id: self._received.pop(p.event.signal_id) for p in ready
                          if isinstance(p.event, Signal) and p.event.signal_id in self._received}
        self.counters.events += len(ready)
        return [p.event for p in ready]

    def _reached(self, limit: datetime | None) -> bool:
        """True once every event up to ``limit`` has certainly arrived and been released."""
        if limit is None:
            return False
        wm = self.orderer.watermark()
        return wm is not None and wm >= limit and not self.orderer.pop_ready_preview(limit)

    def batches(self) -> Iterator[Sequence[Event]]:
        """Poll until stopped (stop event, idle timeout, or the last bar of the run released)."""
        limit = self.filter.end_available_time
        last_data = self.monotonic()
        while True:
            if self.stop_event is not None and self.stop_event.is_set():
                self.counters.stopped_by = "stop_event"
                break
            records = self.source.poll(self.poll_timeout_ms)
            now = self.monotonic()
            if records:
                last_data = now
                self.ingest(records)
            ready = self._release(limit=limit)
            if ready:
                yield ready
                log.info("feed.progress", extra={"events": self.counters.events})
            if self._reached(limit):
                self.counters.stopped_by = "until_bar_time"
                break
            if not records and now - last_data >= self.max_idle_s:
                self.counters.stopped_by = "idle"
                break
        # everything received that is not past the limit can be processed now
        rest = self._release(flush=True, limit=limit)
        self.counters.after_end = len(self.orderer.buffered())
        yield rest

    def since_received(self, signal_id: str) -> float | None:
        """Seconds since the record of a signal of the batch last released arrived (None for another signal)."""
        t = self._released.get(signal_id)
        return None if t is None else self.monotonic() - t

    def commit(self) -> None:
        """Commit every offset whose predecessors are all processed (call after persisting)."""
        pending: dict[tuple[str, int], int] = {}
        for rec in self.orderer.buffered():
            tp = (rec.topic, rec.partition)
            pending[tp] = min(pending.get(tp, rec.offset), rec.offset)
        offsets = {tp: pending.get(tp, nxt) for tp, nxt in self._seen.items()}
        offsets = {tp: o for tp, o in offsets.items() if self._committed.get(tp) != o}
        self.source.commit(offsets)
        self._committed.update(offsets)
        self.counters.checkpoints += 1

    def close(self) -> None:
        self.source.close()
