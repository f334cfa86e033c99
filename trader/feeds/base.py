"""The event-feed protocol and the one way a candle becomes a trader event.

Every feed decodes candles through :func:`decode_bar`, which applies the candle rule of
:mod:`cryptolake.bars`: a consistent candle becomes a :class:`~trader.domain.Bar`, any other a
:class:`SkippedBar` carrying its reasons. The node skips and counts those identically whatever
the feed, so a backtest and a paper run over the same candles agree on every fill and on the
count of skipped bars.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from cryptolake.bars import candle_problems
from cryptolake.errors import DataValidationError
from trader.domain import Bar, Candle, Signal, timeframe_delta


@dataclass(frozen=True, slots=True)
class SkippedBar(Candle):
    """A candle the trader does not trade on, with why (``reasons``: names from :mod:`cryptolake.bars`)."""

    reasons: tuple[str, ...] = ()

    @classmethod
    def of(cls, bar: Bar, reasons: tuple[str, ...]) -> SkippedBar:
        """A valid bar skipped for another reason (e.g. stale)."""
        return cls(bar.exchange, bar.symbol, bar.timeframe, bar.open_time, bar.close_time, bar.open, bar.high,
                   bar.low, bar.close, bar.volume, reasons)

Event = Bar | Signal | SkippedBar
EventKey = tuple[datetime, int, str, datetime]


def event_sort_key(event: Event) -> EventKey:
    """The one ordering of events used by every feed and the node."""
    if isinstance(event, Signal):
        return event.available_time, 1, event.instrument_key, event.bar_time
    return event.close_time, 0, event.instrument_key, event.open_time


def decode_bar(
    exchange: str, symbol: str, timeframe: str, open_time: datetime,
    open_: float, high: float, low: float, close: float, volume: float,
) -> Bar | SkippedBar:
    """A candle as a Bar, or as a SkippedBar when it breaks the candle rule (``Bar`` checks it once)."""
    close_time = open_time + timeframe_delta(timeframe)
    try:
        return Bar(exchange, symbol, timeframe, open_time, close_time, open_, high, low, close, volume)
    except DataValidationError:
        problems = candle_problems(open_, high, low, close, volume)
        if not problems:
            raise  # not the candle rule (a naive time, say): the record itself is bad
        return SkippedBar(exchange, symbol, timeframe, open_time, close_time, open_, high, low, close, volume,
                          problems)


class EventFeed(Protocol):
    """Ordered batches of events for a node.

    ``batches`` yields lists of events in :func:`event_sort_key` order (across batches too). After
    the node has processed a batch and persisted what it changed, it calls ``commit`` so the feed
    may acknowledge its source (Kafka offsets). ``stats`` are the feed's own counters (records
    read, dead-lettered, filtered out...).
    """

    def batches(self) -> Iterator[Sequence[Event]]: ...

    def commit(self) -> None: ...

    def close(self) -> None: ...

    @property
    def stats(self) -> dict[str, int | str]: ...
