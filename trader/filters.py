"""Which events a run trades: one filter shared by backtest and live, so both see identical inputs.

The Kafka topics hold the whole history, every instrument and the signals of several model
versions; a run trades one exchange/timeframe, its symbols, from ``start_time`` (the model's
out-of-sample start) up to the bar opening at ``until_bar_time``, with one model's signals.
Rules (on the payload, never on the Kafka timestamp):

* a bar or signal whose ``event_time`` (bar open / ``bar_time``) is before ``start_time`` is
  not traded (so a signal about the last in-sample bar cannot trigger an entry);
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
from trader.domain import Bar, Signal, timeframe_delta

Event = Bar | Signal


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

    @classmethod
    def for_run(
        cls,
        config: TraderConfig,
        *,
        start_time: datetime | None = None,
        until_bar_time: datetime | None = None,
        model_version: str | None = None,
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
        return cls(
            config.exchange, config.timeframe, frozenset(config.symbols), start_time, until_bar_time, model_version
        )

    @property
    def end_available_time(self) -> datetime | None:
        """The last ``available_time`` processed: the close of the bar opening at ``until_bar_time``."""
        if self.until_bar_time is None:
            return None
        return self.until_bar_time + timeframe_delta(self.timeframe)

    def skip_reason(self, event: Event, *, check_end: bool = True) -> Skip | None:
        """Why ``event`` is outside the run, or None if it is traded."""
        if event.exchange != self.exchange or event.timeframe != self.timeframe or event.symbol not in self.symbols:
            return Skip.OTHER_INSTRUMENT
        if isinstance(event, Signal):
            if self.model_version is not None and event.model_version != self.model_version:
                return Skip.OTHER_MODEL_VERSION
            event_time = event.bar_time
        else:
            event_time = event.open_time
        if self.start_time is not None and event_time < self.start_time:
            return Skip.BEFORE_START
        end = self.end_available_time
        if check_end and end is not None and event.available_time > end:
            return Skip.AFTER_END
        return None
