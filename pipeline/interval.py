"""A task's data interval and its progress lines."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptolake.settings import Settings


@dataclass(frozen=True)
class Interval:
    """A half-open data interval [start, end) in UTC: what one pipeline run is about."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError(f"interval bounds must be UTC-aware: {self.start!r}, {self.end!r}")
        if self.end <= self.start:
            raise ValueError(f"interval end {self.end.isoformat()} is not after start {self.start.isoformat()}")

    @classmethod
    def parse(cls, start: str | datetime, end: str | datetime) -> Interval:
        def as_dt(v: str | datetime) -> datetime:
            dt = v if isinstance(v, datetime) else datetime.fromisoformat(v)
            return dt if dt.tzinfo else dt.replace(tzinfo=UTC)

        return cls(as_dt(start), as_dt(end))

    def ms(self) -> tuple[int, int]:
        return int(self.start.timestamp() * 1000), int(self.end.timestamp() * 1000)

    @property
    def tag(self) -> str:
        """``YYYYmmdd-YYYYmmdd`` (or with hours when the bounds are not midnights): names a run's outputs."""
        fmt = "%Y%m%d" if self.start.hour == self.end.hour == 0 else "%Y%m%d%H"
        return f"{self.start:{fmt}}-{self.end:{fmt}}"


def progress(line: str) -> None:
    """One progress line on stderr (Airflow's task logging captures log records, not this)."""
    print(line, file=sys.stderr, flush=True)


def run_dir(settings: Settings, interval: Interval) -> Path:
    """Where an interval's task results and reports are recorded (read back by the main job's summary)."""
    return settings.paths.artifacts_dir / "runs" / f"{interval.start:%Y-%m-%d}_{interval.end:%Y-%m-%d}"
