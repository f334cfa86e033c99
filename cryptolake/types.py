"""Small shared types and time helpers (UTC only)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

TIMEFRAME_MS: dict[str, int] = {
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
}


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


def to_ms(ts: datetime) -> int:
    """UTC-aware datetime -> epoch milliseconds. Naive datetimes are refused."""
    if ts.tzinfo is None:
        raise ValueError(f"naive datetime {ts!r}: cryptolake uses UTC-aware times only")
    return int(ts.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    """Epoch milliseconds -> UTC-aware datetime."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
