"""X (Twitter) API v2 recent search connector: ``/2/tweets/search/recent`` paged with ``next_token``.

Auth: app-only bearer token ``X_BEARER_TOKEN``. On 429 the wait comes from ``x-rate-limit-reset``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from cryptolake import topics
from cryptolake.errors import DataValidationError
from cryptolake.retry import RetryPolicy
from cryptolake.schemas import SocialPostV1
from cryptolake.types import to_ms
from ingest.connectors.base import Clock, Connector, HttpClient, Item, iso_to_ms, make_record, require_env, utc_now


class XRecentSearchConnector(Connector):
    """Tweets matching ``query`` created in [since, until] (the API serves the last 7 days)."""

    name = "x"
    topic = topics.SOCIAL_POSTS

    def __init__(self, query: str, since: datetime, until: datetime, *, base_url: str = "https://api.x.com",
                 bearer_token: str | None = None, page_size: int = 100, max_pages: int = 100,
                 clock: Clock = utc_now, sleep: Callable[[float], None] = time.sleep,
                 policy: RetryPolicy = RetryPolicy()) -> None:
        token = bearer_token or require_env("X_BEARER_TOKEN")
        self.query, self.since, self.until = query, since, until
        self.page_size, self.max_pages, self.clock = page_size, max_pages, clock
        self.client = HttpClient(base_url, name=self.name, headers={"Authorization": f"Bearer {token}"},
                                 min_interval=1.0, sleep=sleep, policy=policy)

    def _map(self, t: dict[str, Any], users: dict[str, dict[str, Any]], ingest_ms: int) -> dict[str, Any]:
        created = iso_to_ms(t["created_at"])
        user = users.get(t.get("author_id", ""), {})
        m = t.get("public_metrics") or {}
        refs = t.get("referenced_tweets") or []
        return {"schema_version": 1, "platform": "x", "post_id": t["id"], "kind": "tweet", "channel": self.query,
                "author": user.get("username") or t.get("author_id"),
                "author_followers": (user.get("public_metrics") or {}).get("followers_count"),
                "text": t["text"], "url": f"https://x.com/i/web/status/{t['id']}",
                "parent_id": refs[0]["id"] if refs else None, "score": m.get("like_count"),
                "replies": m.get("reply_count"), "reposts": m.get("retweet_count"), "views": m.get("impression_count"),
                "language": t.get("lang"), "event_time": created, "available_time": created, "ingest_time": ingest_ms}

    def items(self) -> Iterator[Item]:
        token: str | None = None
        for _ in range(self.max_pages):
            params: dict[str, Any] = {
                "query": self.query, "max_results": self.page_size,
                "start_time": self.since.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "end_time": self.until.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "tweet.fields": "created_at,public_metrics,author_id,lang,referenced_tweets",
                "expansions": "author_id", "user.fields": "username,public_metrics"}
            if token:
                params["next_token"] = token
            body = self.client.get_json("/2/tweets/search/recent", params=params)
            if not isinstance(body, dict) or "meta" not in body:
                raise DataValidationError("x.body", str(body)[:200], "answer has no meta")
            users = {u["id"]: u for u in (body.get("includes") or {}).get("users", []) if "id" in u}
            ingest_ms = to_ms(self.clock())
            for t in body.get("data", []):
                yield make_record(SocialPostV1, t, lambda r: self._map(r, users, ingest_ms),  # noqa: B023 (called immediately)
                                  str(t.get("id", "?")) if isinstance(t, dict) else "?")
            token = body["meta"].get("next_token")
            if not token:
                return
