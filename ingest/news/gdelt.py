"""GDELT DOC 2.0 API connector (``mode=artlist``, ``format=json``; no key; one request per 5 s).

The artlist mode has no page token: it returns at most ``maxrecords`` (<= 250) articles for
a time range. We page by time: sort ascending and, when a page is full, start the next
request at the last ``seendate`` seen (URLs already emitted are not repeated).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptolake import topics
from cryptolake.errors import DataValidationError
from cryptolake.retry import RetryPolicy
from cryptolake.schemas import NewsArticleV1
from cryptolake.types import to_ms
from ingest.connectors.base import Clock, Connector, HttpClient, Item, make_record, utc_now
from ingest.news.newsapi import url_id

_LANG = {"english": "en", "spanish": "es", "german": "de", "french": "fr", "chinese": "zh", "russian": "ru",
         "japanese": "ja", "korean": "ko", "portuguese": "pt", "italian": "it", "turkish": "tr"}
_FMT = "%Y%m%d%H%M%S"


def seendate_ms(value: str) -> int:
    """``20220105T100500Z`` -> epoch ms."""
    return to_ms(datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC))


class GdeltDocConnector(Connector):
    """Articles matching ``query`` seen by GDELT in [since, until]. ``available_time`` = GDELT's seendate."""

    name = "gdelt"
    topic = topics.NEWS_ARTICLES

    def __init__(self, query: str, since: datetime, until: datetime, *,
                 base_url: str = "https://api.gdeltproject.org", max_records: int = 250, max_pages: int = 200,
                 min_interval: float = 5.0, clock: Clock = utc_now, sleep: Callable[[float], None] = time.sleep,
                 policy: RetryPolicy = RetryPolicy(base_delay=5.0)) -> None:
        self.query, self.since, self.until = query, since, until
        self.max_records, self.max_pages, self.clock = max_records, max_pages, clock
        self.client = HttpClient(base_url, name=self.name, min_interval=min_interval, sleep=sleep, policy=policy)

    def _map(self, a: dict[str, Any], ingest_ms: int) -> dict[str, Any]:
        seen = seendate_ms(a["seendate"])
        return {"schema_version": 1, "source": "gdelt", "doc_id": url_id(a["url"]), "url": a["url"],
                "title": a.get("title") or "", "language": _LANG.get(str(a.get("language", "")).lower()),
                "subject": a.get("domain"), "event_time": seen, "available_time": seen, "ingest_time": ingest_ms}

    def items(self) -> Iterator[Item]:
        start, emitted = self.since, set[str]()
        for _ in range(self.max_pages):
            body = self.client.get_json("/api/v2/doc/doc", params={
                "query": self.query, "mode": "artlist", "format": "json", "maxrecords": self.max_records,
                "sort": "dateasc", "startdatetime": start.strftime(_FMT), "enddatetime": self.until.strftime(_FMT)})
            if not isinstance(body, dict):
                raise DataValidationError("gdelt.body", body, "expected a JSON object")
            articles = body.get("articles", [])  # GDELT answers {} when nothing matched
            if not isinstance(articles, list):
                raise DataValidationError("articles", articles, "GDELT answer has no articles list")
            ingest_ms = to_ms(self.clock())
            last: datetime | None = None
            for a in articles:
                url = a.get("url") if isinstance(a, dict) else None
                if url in emitted:
                    continue
                rec = make_record(NewsArticleV1, a, lambda r: self._map(r, ingest_ms), str(url))  # noqa: B023 (called immediately)
                if isinstance(url, str):
                    emitted.add(url)
                yield rec
                if isinstance(rec, NewsArticleV1):
                    last = datetime.fromtimestamp(rec.event_time / 1000, tz=UTC)
            if len(articles) < self.max_records or last is None:
                return
            # a full page: continue from the last second seen (same-second rows are de-duplicated above)
            start = last if last > start else start + timedelta(seconds=1)
