"""The node's clock. Backtest and paper use :class:`SimClock`, which moves only when an event says so."""

from __future__ import annotations

from datetime import datetime

from cryptolake.errors import DataValidationError


class SimClock:
    """A clock that only moves when an event says so (deterministic, never reads wall time)."""

    def __init__(self) -> None:
        self._now: datetime | None = None

    def now(self) -> datetime:
        if self._now is None:
            raise RuntimeError("the clock has not been set: no event processed yet")
        return self._now

    def advance(self, ts: datetime) -> None:
        """Move the clock to ``ts`` (never backwards)."""
        if self._now is not None and ts < self._now:
            raise DataValidationError("ts", ts, f"is before the clock's time {self._now.isoformat()}")
        self._now = ts

    def catch_up(self, ts: datetime) -> None:
        """Move forward to ``ts`` if it is later; an earlier time (an open-price fill) keeps the clock."""
        if self._now is None or ts > self._now:
            self._now = ts
