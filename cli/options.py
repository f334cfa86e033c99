"""Option parsing shared by the commands."""

from __future__ import annotations

from datetime import UTC, datetime

import typer


def parse_time(value: str | None, name: str) -> datetime | None:
    """ISO 8601 -> UTC-aware datetime (a date or naive time is read as UTC); None stays None."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"--{name} {value!r}: not an ISO 8601 time ({exc})") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
