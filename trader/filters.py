"""Which events a run trades: one filter shared by backtest and live, so both see identical inputs.

The Kafka topics hold the whole history, every instrument and the signals of several model
versions; a run trades one timeframe, its instruments (``exchange:symbol``, one or more venues),
from ``start_time`` (the model's out-of-sample start) up to the bar opening at ``until_bar_time``,
with one model's signals.
Rules (on the payload, never on the Kafka timestamp):

* a signal whose ``bar_time`` is before ``start_time`` is not traded (so a signal about the last
  in-sample bar cannot trigger an entry); a bar opening before ``start_time - warmup`` is not
  read at all, and the bars in ``[start_time - warmup, start_time)`` only warm the node up
  (history, stale runs, last prices);
* an event whose ``available_time`` is after the close of the bar opening at ``until_bar_time``
  is past the end;
* a signal of another ``model_version`` is ignored (counted, not dead-lettered).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from cryptolake.errors import DataValidationError
from trader.config import TraderConfig
from trader.domain import Signal, timeframe_delta
from trader.feeds.base import Event


class Skip(StrEnum):
    """Why an event is not traded (names the counter in the run's stats)."""

    OTHER_INSTRUMENT = "other_instruments"
    OTHER_MODEL_VERSION = "other_model_versions"
    BEFORE_START = "before_start"
    AFTER_END = "after_end"


def _utc(name: str, ts: datetime | None) -> datetime | None:
    if ts is not None and ts.utcoffset() != timedelta(0):
        raise DataValidationError(name, ts, "must be a UTC-aware datetime")
    return ts


@dataclass(frozen=True)
class EventFilter:
    """The run's slice of the input streams."""

    exchange: str
    timeframe: str
    symbols: frozenset[str]
    start_time: datetime | None = None
    until_bar_time: datetime | None = None
    model_version: str | None = None
    warmup: timedelta = timedelta(0)
    instruments: frozenset[str] = frozenset()  # exchange:symbol keys; empty = exchange x symbols

    def trades(self, exchange: str, symbol: str) -> bool:
        """Whether the run trades ``symbol`` on ``exchange``."""
        if self.instruments:
            return f"{exchange}:{symbol}" in self.instruments
        return exchange == self.exchange and symbol in self.symbols

    @classmethod
    def for_run(
        cls,
        config: TraderConfig,
        *,
        start_time: datetime | None = None,
        until_bar_time: datetime | None = None,
        model_version: str | None = None,
        warmup_bars: int = 0,
    ) -> EventFilter:
        """The filter of a run of ``config`` (validates the times are UTC-aware and ordered)."""
        _utc("start_time", start_time)
        _utc("until_bar_time", until_bar_time)
        if start_time is not None and until_bar_time is not None and until_bar_time < start_time:
            raise DataValidationError(
                "until_bar_time", until_bar_time, f"is before start_time {start_time.isoformat()}"
            )
        if model_version is not None and not model_version.strip():
            raise DataValidationError("model_version", model_version, "must be non-empty (or None for any)")
        if warmup_bars < 0:
            raise DataValidationError("warmup_bars", warmup_bars, "must be >= 0")
        return cls(
            config.exchange, config.timeframe, frozenset(config.symbols), start_time, until_bar_time, model_version,
            timeframe_delta(config.timeframe) * warmup_bars, config.instrument_keys,
        )

    @property
    def bars_from(self) -> datetime | None:
        """The first bar open time read: ``start_time`` less the warm-up."""
        return None if self.start_time is None else self.start_time - self.warmup

    @property
    def end_available_time(self) -> datetime | None:
        """The last ``available_time`` processed: the close of the bar opening at ``until_bar_time``."""
        if self.until_bar_time is None:
            return None
        return self.until_bar_time + timeframe_delta(self.timeframe)

    def skip_payload(self, payload: object, *, is_signal: bool) -> Skip | None:
        """A cheap pre-check on a raw message payload, before schema validation.

        Returns a reason only when the well-typed identifying fields (exchange, timeframe,
        symbol, model_version, event_time in epoch ms) already put the record outside the run,
        giving the same answer as :meth:`skip_reason` on the decoded event; anything else
        (None) must be decoded and checked in full, so malformed records are still caught.
        Replayed history makes most records of a run's topics someone else's: skipping their
        validation is what keeps a run's start fast.
        """
        if not isinstance(payload, dict):
            return None
        ex, tf, sym = payload.get("exchange"), payload.get("timeframe"), payload.get("symbol")
        if not (isinstance(ex, str) and isinstance(tf, str) and isinstance(sym, str)):
            return None
        if tf != self.timeframe or not self.trades(ex, sym):
            return Skip.OTHER_INSTRUMENT
        if is_signal and self.model_version is not None:
            version = payload.get("model_version")
            if not isinstance(version, str):
                return None
            if version != self.model_version:
                return Skip.OTHER_MODEL_VERSION
        if self.start_time is not None:
            event_ms = payload.get("event_time")
            if type(event_ms) is not int:
                return None
            if event_ms < (self._start_ms if is_signal else self._bars_from_ms):
                return Skip.BEFORE_START
        return None

    @property
    def _start_ms(self) -> int:
        assert self.start_time is not None
        return round(self.start_time.timestamp() * 1000)

    @property
    def _bars_from_ms(self) -> int:
        assert self.bars_from is not None
        return round(self.bars_from.timestamp() * 1000)

    def skip_reason(self, event: Event, *, check_end: bool = True) -> Skip | None:
        """Why ``event`` is outside the run, or None if it is traded."""
        if event.timeframe != self.timeframe or not self.trades(event.exchange, event.symbol):
            return Skip.OTHER_INSTRUMENT
        if isinstance(event, Signal):
            if self.model_version is not None and event.model_version != self.model_version:
                return Skip.OTHER_MODEL_VERSION
            first = self.start_time
            event_time = event.bar_time
        else:
            first = self.bars_from
            event_time = event.open_time
        if first is not None and event_time < first:
            return Skip.BEFORE_START
        end = self.end_available_time
        if check_end and end is not None and event.available_time > end:
            return Skip.AFTER_END
        return None
