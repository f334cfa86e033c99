"""FRED ``series/observations`` connector (auth: ``FRED_API_KEY``), for macro context.

Point in time: we ask for ``output_type=4`` (initial release only), so each observation's
``realtime_start`` is the day its first value was published; that is its ``available_time``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any

from cryptolake import topics
from cryptolake.errors import DataValidationError, FatalError
from cryptolake.retry import RetryPolicy
from cryptolake.schemas import MacroObservationV1
from cryptolake.types import to_ms
from ingest.connectors.base import Clock, Connector, HttpClient, Item, make_record, require_env, utc_now


def _day_ms(value: str) -> int:
    return to_ms(datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC))


class FredConnector(Connector):
    """Observations of ``series_ids`` in [start, end], paged with ``limit``/``offset``."""

    name = "fred"
    topic = topics.MACRO_OBSERVATIONS

    def __init__(self, series_ids: list[str], start: date, end: date, *,
                 base_url: str = "https://api.stlouisfed.org", api_key: str | None = None, page_size: int = 1000,
                 initial_release_only: bool = True, clock: Clock = utc_now,
                 sleep: Callable[[float], None] = time.sleep, policy: RetryPolicy = RetryPolicy()) -> None:
        self.api_key = api_key or require_env("FRED_API_KEY")
        self.series_ids, self.start, self.end, self.page_size = series_ids, start, end, page_size
        self.output_type = 4 if initial_release_only else 1
        self.clock = clock
        self.client = HttpClient(base_url, name=self.name, min_interval=0.5, sleep=sleep, policy=policy)

    @staticmethod
    def _map(series: str, o: dict[str, Any], ingest_ms: int) -> dict[str, Any]:
        raw = o["value"]
        value = None if raw == "." else float(raw)
        event = _day_ms(o["date"])
        return {"schema_version": 1, "source": "fred", "series_id": series, "date": o["date"], "value": value,
                "event_time": event, "available_time": max(event, _day_ms(o["realtime_start"])),
                "ingest_time": ingest_ms}

    def items(self) -> Iterator[Item]:
        for series in self.series_ids:
            offset = 0
            while True:
                body = self.client.get_json("/fred/series/observations", params={
                    "series_id": series, "api_key": self.api_key, "file_type": "json",
                    "observation_start": self.start.isoformat(), "observation_end": self.end.isoformat(),
                    "output_type": self.output_type, "limit": self.page_size, "offset": offset})
                if not isinstance(body, dict) or "error_code" in body:
                    raise FatalError(f"fred: {str(body)[:200]}")
                rows = body.get("observations")
                if not isinstance(rows, list):
                    raise DataValidationError("observations", rows, "FRED answer has no observations list")
                ingest_ms = to_ms(self.clock())
                for o in rows:
                    yield make_record(MacroObservationV1, o, lambda r, s=series: self._map(s, r, ingest_ms),  # type: ignore[misc]  # noqa: B023 (called immediately)
                                      f"{series}:{o.get('date') if isinstance(o, dict) else '?'}")
                offset += len(rows)
                if not rows or offset >= int(body.get("count", 0)):
                    break
