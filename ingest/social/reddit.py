"""Reddit OAuth API connector: ``/r/{subreddit}/new`` Listings paged with ``after``.

Auth (application-only OAuth, client credentials): ``REDDIT_CLIENT_ID`` and
``REDDIT_CLIENT_SECRET``; the bearer token is requested from ``/api/v1/access_token``.
Reddit allows ~100 requests per minute per client; we keep 0.6 s between calls and honour
``X-Ratelimit-Reset`` on 429.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from cryptolake import topics
from cryptolake.errors import AuthenticationError, DataValidationError
from cryptolake.logs import register_secret
from cryptolake.retry import RetryPolicy
from cryptolake.schemas import SocialPostV1
from cryptolake.types import to_ms
from ingest.connectors.base import (
    Clock,
    Connector,
    HttpClient,
    Item,
    epoch_s_to_ms,
    make_record,
    parse_json,
    require_env,
    utc_now,
)


class RedditConnector(Connector):
    """New posts of ``subreddits`` created in [since, until] (newest first, stops past ``since``)."""

    name = "reddit"
    topic = topics.SOCIAL_POSTS

    def __init__(self, subreddits: list[str], since: datetime, until: datetime, *,
                 auth_url: str = "https://www.reddit.com", api_url: str = "https://oauth.reddit.com",
                 client_id: str | None = None, client_secret: str | None = None, page_size: int = 100,
                 max_pages: int = 50, clock: Clock = utc_now, sleep: Callable[[float], None] = time.sleep,
                 policy: RetryPolicy = RetryPolicy()) -> None:
        self.client_id = client_id or require_env("REDDIT_CLIENT_ID")
        self.client_secret = client_secret or require_env("REDDIT_CLIENT_SECRET")
        register_secret(self.client_secret)
        self.subreddits, self.page_size, self.max_pages = subreddits, page_size, max_pages
        self.since_ms, self.until_ms, self.clock = to_ms(since), to_ms(until), clock
        self.auth = HttpClient(auth_url, name="reddit-auth", sleep=sleep, policy=policy)
        self.client = HttpClient(api_url, name=self.name, min_interval=0.6, sleep=sleep, policy=policy)

    def _login(self) -> None:
        resp = self.auth.request("POST", "/api/v1/access_token", data={"grant_type": "client_credentials"},
                                 auth=(self.client_id, self.client_secret))
        token = parse_json(resp.text, "reddit-auth").get("access_token")
        if not token:
            raise AuthenticationError("reddit: no access_token in the token answer")
        register_secret(token)
        self.client.session.headers["Authorization"] = f"bearer {token}"

    @staticmethod
    def _map(p: dict[str, Any], ingest_ms: int) -> dict[str, Any]:
        created = epoch_s_to_ms(p["created_utc"])
        text = "\n\n".join(x for x in (p.get("title"), p.get("selftext")) if x)
        return {"schema_version": 1, "platform": "reddit", "post_id": p["name"], "kind": "post",
                "channel": p["subreddit"].lower(), "author": p.get("author"), "text": text,
                "url": "https://www.reddit.com" + p["permalink"] if p.get("permalink") else p.get("url"),
                "score": p.get("score"), "replies": p.get("num_comments"), "event_time": created,
                "available_time": created, "ingest_time": ingest_ms}

    def items(self) -> Iterator[Item]:
        self._login()
        for sub in self.subreddits:
            after: str | None = None
            for _ in range(self.max_pages):
                params: dict[str, Any] = {"limit": self.page_size, "raw_json": 1}
                if after:
                    params["after"] = after
                body = self.client.get_json(f"/r/{sub}/new", params=params)
                try:
                    data = body["data"]
                    children = data["children"]
                except (KeyError, TypeError) as exc:
                    raise DataValidationError("listing", str(body)[:200], "not a Reddit Listing") from exc
                ingest_ms = to_ms(self.clock())
                oldest = None
                for child in children:
                    p = child.get("data", {}) if isinstance(child, dict) else {}
                    rec = make_record(SocialPostV1, p, lambda r: self._map(r, ingest_ms), str(p.get("name", "?")))  # noqa: B023 (called immediately)
                    if isinstance(rec, SocialPostV1):
                        oldest = rec.event_time if oldest is None else min(oldest, rec.event_time)
                        if not self.since_ms <= rec.event_time <= self.until_ms:
                            continue
                    yield rec
                after = data.get("after")
                if not after or (oldest is not None and oldest < self.since_ms):
                    break
