"""Replay of the real headlines in ``news/cryptonews.csv.gz`` as NewsArticleV1 records.

The file's ``date`` is day-month-year at minute precision (``5-7-2022 04:24``). The true
publication instant lies somewhere in that minute, so ``available_time`` is the end of the
minute: a headline stamped 10:05 is usable only by bars closing at 10:06 or later.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from cryptolake import topics
from cryptolake.schemas import NewsArticleV1
from cryptolake.types import to_ms
from ingest.connectors.base import Clock, Connector, Item, make_record, utc_now

MINUTE_MS = 60_000


def cryptonews_payload(row: dict[str, Any], ingest_ms: int) -> dict[str, Any]:
    """One cryptonews.csv row -> NewsArticleV1 payload (times from the row, never from the clock)."""
    published = to_ms(datetime.strptime(row["date"], "%d-%m-%Y %H:%M").replace(tzinfo=UTC))
    sentiment = ast.literal_eval(row["sentiment"]) if isinstance(row.get("sentiment"), str) else {}
    return {"schema_version": 1, "source": "replay:cryptonews",
            "doc_id": hashlib.sha256(f"{row['url']}|{row['date']}".encode()).hexdigest()[:24],
            "url": row["url"], "title": row["title"] or "", "body": row.get("text") or "",
            "author": row.get("source"), "language": None, "subject": row.get("subject"),
            "provider_sentiment": sentiment.get("polarity"), "event_time": published,
            "available_time": published + MINUTE_MS, "ingest_time": ingest_ms}


class CryptoNewsReplay(Connector):
    """Every row of the cryptonews CSV (optionally only [since, until) by publication time)."""

    name = "replay-cryptonews"
    topic = topics.NEWS_ARTICLES

    def __init__(self, path: Path, *, since: datetime | None = None, until: datetime | None = None,
                 clock: Clock = utc_now) -> None:
        self.path, self.since, self.until, self.clock = path, since, until, clock

    def items(self) -> Iterator[Item]:
        df = pd.read_csv(self.path, sep=";", dtype=str, keep_default_na=False)
        ingest_ms = to_ms(self.clock())
        for row in df.to_dict("records"):
            rec = make_record(NewsArticleV1, row, lambda r: cryptonews_payload(r, ingest_ms), str(row.get("url")))
            if isinstance(rec, NewsArticleV1) and not self._in_range(rec.event_time):
                continue
            yield rec

    def _in_range(self, ms: int) -> bool:
        return (self.since is None or ms >= to_ms(self.since)) and (self.until is None or ms < to_ms(self.until))
