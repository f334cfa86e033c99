"""Alternative data as a long-running connector: poll a source, publish each new record once.

By default the source is a local stand-in of the NewsAPI (:func:`ingest.testing_servers.apis.newsapi_app`)
serving the REAL headlines of ``news/cryptonews.csv.gz`` in their publication order, a batch of them
becoming "new" at each poll (a replay of the news flow); with ``NEWSAPI_API_KEY`` set it is the real
NewsAPI. Every poll runs the source's own connector (:class:`ingest.news.newsapi.NewsApiConnector`: the
documented API, its paging, its rate-limit answers) and publishes the records whose key was not published
before: the keys already in ``news.articles`` (:func:`ingest.published.high_water_marks`) are read at
start, so a restart publishes nothing twice. Rejects go to ``dlq.news.articles`` with their reason, once.
The Reddit and chain (explorer daily figures) replays are :mod:`ingest.altlive_social` and
:mod:`ingest.altlive_chain`; every source runs through the one :class:`PollingPublisher`.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptolake.logs import get_logger
from ingest.connectors.base import Connector, Rejected

log = get_logger(__name__)


def replay_articles(data_root: Path) -> list[dict[str, Any]]:
    """The real cryptonews headlines as NewsAPI ``articles`` items, oldest first (one per URL)."""
    path = data_root / "news" / "cryptonews.csv.gz"
    with gzip.open(path, "rb") as raw:
        rows = list(csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8"), delimiter=";"))
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        ts = datetime.strptime(row["date"], "%d-%m-%Y %H:%M").replace(tzinfo=UTC)
        out.setdefault(row["url"], {"source": {"id": None, "name": row["source"]}, "author": None,
                                    "title": row["title"], "description": row["text"], "url": row["url"],
                                    "urlToImage": None, "publishedAt": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                    "content": None})
    return sorted(out.values(), key=lambda a: (a["publishedAt"], a["url"]))


class PollingPublisher:
    """Runs a fresh connector per poll and sends each record whose key is new (``seen`` survives restarts)."""

    def __init__(self, make: Callable[[], Connector], producer: Any, seen: set[str] | None = None) -> None:
        self.make = make
        self.producer = producer
        self.seen: set[str] = set(seen or ())
        self.published = 0
        self.rejected = 0

    def poll(self) -> int:
        """One poll; returns the records published."""
        sent = 0
        conn = self.make()
        for item in conn.items():
            key = item.key if isinstance(item, Rejected) else item.key()
            if key in self.seen:
                continue
            self.seen.add(key)
            if isinstance(item, Rejected):
                self.producer.dead_letter(item.topic, item.key, item.raw, item.reason)
                self.rejected += 1
            else:
                self.producer.send_message(item)
                sent += 1
        self.published += sent
        if sent:
            log.info("altdata.poll", extra={"connector": conn.name, "published": sent, "total": self.published})
        return sent


class NewsReplay:
    """The news flow replayed: ``release(n)`` makes the next ``n`` real headlines visible to the local API."""

    def __init__(self, articles: list[dict[str, Any]]) -> None:
        self.pending = list(articles)
        self.visible: list[dict[str, Any]] = []  # what the local NewsAPI serves (newest first)

    def release(self, n: int) -> int:
        batch, self.pending = self.pending[:n], self.pending[n:]
        self.visible[:0] = list(reversed(batch))
        return len(batch)


def window(now: datetime, days: float = 1.0) -> tuple[datetime, datetime]:
    """The [since, until] a live poll asks the real API for."""
    return now - timedelta(days=days), now
