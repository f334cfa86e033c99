"""NewsAPI ``/v2/everything`` connector (auth: ``NEWSAPI_API_KEY``, sent as ``X-Api-Key``)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from cryptolake import topics
from cryptolake.errors import DataValidationError, FatalError
from cryptolake.retry import RetryPolicy
from cryptolake.schemas import NewsArticleV1
from cryptolake.types import to_ms
from ingest.connectors.base import Clock, Connector, HttpClient, Item, iso_to_ms, make_record, require_env, utc_now


def url_id(url: str) -> str:
    """A stable document id from a URL."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:24]


class NewsApiConnector(Connector):
    """Articles matching ``query`` published in [since, until], paged with ``page``/``pageSize``."""

    name = "newsapi"
    topic = topics.NEWS_ARTICLES

    def __init__(self, query: str, since: datetime, until: datetime, *, base_url: str = "https://newsapi.org",
                 api_key: str | None = None, language: str = "en", page_size: int = 100, max_pages: int = 100,
                 clock: Clock = utc_now, sleep: Callable[[float], None] = time.sleep,
                 policy: RetryPolicy = RetryPolicy()) -> None:
        key = api_key or require_env("NEWSAPI_API_KEY")
        self.query, self.since, self.until = query, since, until
        self.language, self.page_size, self.max_pages, self.clock = language, page_size, max_pages, clock
        self.client = HttpClient(base_url, name=self.name, headers={"X-Api-Key": key}, min_interval=1.0,
                                 sleep=sleep, policy=policy)

    def _map(self, a: dict[str, Any], ingest_ms: int) -> dict[str, Any]:
        published = iso_to_ms(a["publishedAt"])
        body = " ".join(x for x in (a.get("description"), a.get("content")) if x)
        return {"schema_version": 1, "source": "newsapi", "doc_id": url_id(a["url"]), "url": a["url"],
                "title": a.get("title") or "", "body": body, "author": a.get("author"), "language": self.language,
                "subject": (a.get("source") or {}).get("name"), "event_time": published,
                "available_time": published, "ingest_time": ingest_ms}

    def items(self) -> Iterator[Item]:
        page = 1
        while page <= self.max_pages:
            body = self.client.get_json("/v2/everything", params={
                "q": self.query, "from": self.since.isoformat(), "to": self.until.isoformat(),
                "language": self.language, "sortBy": "publishedAt", "pageSize": self.page_size, "page": page})
            if not isinstance(body, dict) or body.get("status") != "ok":
                raise FatalError(f"newsapi: unexpected answer {str(body)[:200]}")
            articles = body.get("articles")
            if not isinstance(articles, list):
                raise DataValidationError("articles", articles, "NewsAPI answer has no articles list")
            ingest_ms = to_ms(self.clock())
            for a in articles:
                yield make_record(NewsArticleV1, a, lambda r: self._map(r, ingest_ms),  # noqa: B023 (called immediately)
                                  str((a or {}).get("url", "?")) if isinstance(a, dict) else "?")
            total = int(body.get("totalResults", 0))
            if len(articles) < self.page_size or page * self.page_size >= total:
                return
            page += 1
