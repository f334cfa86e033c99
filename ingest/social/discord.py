"""Discord channel history connector: ``GET /channels/{id}/messages`` paged backwards with ``before``.

Auth: a bot token ``DISCORD_BOT_TOKEN`` (``Authorization: Bot <token>``); the bot must be in
the guild with Read Message History. 429 answers carry ``retry_after`` (seconds).
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

DISCORD_EPOCH_MS = 1_420_070_400_000


def snowflake_ms(snowflake: str) -> int:
    """The creation time encoded in a Discord snowflake id."""
    return (int(snowflake) >> 22) + DISCORD_EPOCH_MS


class DiscordHistoryConnector(Connector):
    """Messages of ``channel_ids`` created in [since, until], newest first down to ``since``."""

    name = "discord"
    topic = topics.SOCIAL_POSTS

    def __init__(self, channel_ids: list[str], since: datetime, until: datetime, *,
                 base_url: str = "https://discord.com/api/v10", bot_token: str | None = None, page_size: int = 100,
                 max_pages: int = 100, clock: Clock = utc_now, sleep: Callable[[float], None] = time.sleep,
                 policy: RetryPolicy = RetryPolicy()) -> None:
        token = bot_token or require_env("DISCORD_BOT_TOKEN")
        self.channel_ids, self.page_size, self.max_pages = channel_ids, page_size, max_pages
        self.since_ms, self.until_ms, self.clock = to_ms(since), to_ms(until), clock
        self.client = HttpClient(base_url, name=self.name, headers={"Authorization": f"Bot {token}"},
                                 min_interval=0.25, sleep=sleep, policy=policy)

    @staticmethod
    def _map(channel: str, m: dict[str, Any], ingest_ms: int) -> dict[str, Any]:
        created = iso_to_ms(m["timestamp"])
        ref = m.get("message_reference") or {}
        return {"schema_version": 1, "platform": "discord", "post_id": m["id"], "kind": "message",
                "channel": channel, "author": (m.get("author") or {}).get("username"), "text": m["content"],
                "parent_id": ref.get("message_id"),
                "score": sum(int(r.get("count", 0)) for r in m.get("reactions") or []),
                "event_time": created, "available_time": created, "ingest_time": ingest_ms}

    def items(self) -> Iterator[Item]:
        # Start just after `until`: a snowflake built from a time sorts after every older message.
        start_before = str((self.until_ms + 1 - DISCORD_EPOCH_MS) << 22)
        for channel in self.channel_ids:
            before = start_before
            for _ in range(self.max_pages):
                rows = self.client.get_json(f"/channels/{channel}/messages",
                                            params={"limit": self.page_size, "before": before})
                if not isinstance(rows, list):
                    raise DataValidationError("discord.body", str(rows)[:200], "expected a list of messages")
                ingest_ms = to_ms(self.clock())
                for m in rows:
                    mid = str(m.get("id", "?")) if isinstance(m, dict) else "?"
                    if mid.isdigit() and snowflake_ms(mid) < self.since_ms:
                        continue
                    yield make_record(SocialPostV1, m, lambda r, c=channel: self._map(c, r, ingest_ms), mid)  # type: ignore[misc]  # noqa: B023 (called immediately)
                ids = [int(m["id"]) for m in rows if isinstance(m, dict) and str(m.get("id", "")).isdigit()]
                if len(rows) < self.page_size or not ids or snowflake_ms(str(min(ids))) < self.since_ms:
                    break
                before = str(min(ids))
