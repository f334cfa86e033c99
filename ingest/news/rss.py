"""RSS/Atom feed connector (feedparser), e.g. Cointelegraph, CoinDesk, Decrypt; no auth.

WordPress feeds page with ``?paged=N`` and answer 404 past the last page; other feeds have a
single page. We stop at the first page whose entries are all older than ``since``.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import feedparser

from cryptolake import topics
from cryptolake.errors import DataValidationError
from cryptolake.retry import RetryPolicy
from cryptolake.schemas import NewsArticleV1
from cryptolake.types import to_ms
from ingest.connectors.base import Clock, Connector, HttpClient, Item, make_record, utc_now
from ingest.news.newsapi import url_id

DEFAULT_FEEDS: dict[str, str] = {
    "cointelegraph": "https://cointelegraph.com/rss",
    "coindesk": "https://www.coindesk.com/arc/outboundfeeds/rss/",
    "decrypt": "https://decrypt.co/feed",
    "cryptopotato": "https://cryptopotato.com/feed/",
}


def entry_time_ms(entry: Any) -> int:
    """An entry's publication (or update) time in ms; feedparser gives UTC struct_time."""
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    if parsed is None:
        raise KeyError("published")
    return calendar.timegm(parsed) * 1000


class RssConnector(Connector):
    """Entries of one feed published in [since, until]."""

    name = "rss"
    topic = topics.NEWS_ARTICLES

    def __init__(self, feed_name: str, url: str, since: datetime, until: datetime, *, paged: bool = True,
                 max_pages: int = 20, clock: Clock = utc_now, sleep: Callable[[float], None] = time.sleep,
                 policy: RetryPolicy = RetryPolicy()) -> None:
        self.feed_name, self.url, self.paged, self.max_pages = feed_name, url, paged, max_pages
        self.since_ms, self.until_ms, self.clock = to_ms(since), to_ms(until), clock
        self.client = HttpClient(url, name=f"rss:{feed_name}", min_interval=1.0, sleep=sleep, policy=policy)

    def _map(self, e: Any, ingest_ms: int) -> dict[str, Any]:
        published = entry_time_ms(e)
        link = e["link"]
        return {"schema_version": 1, "source": f"rss:{self.feed_name}", "doc_id": url_id(e.get("id") or link),
                "url": link, "title": e.get("title", ""), "body": e.get("summary", ""), "author": e.get("author"),
                "event_time": published, "available_time": published, "ingest_time": ingest_ms}

    def items(self) -> Iterator[Item]:
        for page in range(1, self.max_pages + 1):
            resp = self.client.request("GET", self.url, params={"paged": page} if self.paged and page > 1 else None,
                                       accept=(404,))
            if resp.status_code == 404:
                return
            feed = feedparser.parse(resp.content)
            if feed.bozo and not feed.entries:
                raise DataValidationError(f"rss:{self.feed_name}", resp.text[:200],
                                          f"not a feed: {feed.get('bozo_exception')}")
            ingest_ms = to_ms(self.clock())
            newest = 0
            for e in feed.entries:
                rec = make_record(NewsArticleV1, dict(e), lambda r: self._map(r, ingest_ms), str(e.get("link")))  # noqa: B023 (called immediately)
                if isinstance(rec, NewsArticleV1):
                    newest = max(newest, rec.event_time)
                    if not self.since_ms <= rec.event_time <= self.until_ms:
                        continue
                yield rec
            if not self.paged or not feed.entries or newest < self.since_ms:
                return
