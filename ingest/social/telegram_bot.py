"""Telegram Bot API connector: channel posts through ``getUpdates`` (long polling), confirmed with ``offset``.

A bot added as an administrator of a channel receives each new post as a ``channel_post`` update. Auth: the
bot token ``TELEGRAM_BOT_TOKEN`` (it is part of the URL path, ``/bot<token>/getUpdates``, so it is registered
as a secret and never logged). ``getUpdates`` forgets every update below the ``offset`` a call confirms, so
the connector keeps the next offset in a shared :class:`BotOffset` across polls. Errors answer
``{"ok": false, "error_code": N, "description": ...}``: 429 is retried by :class:`HttpClient`'s retrier.
The history of a channel (before the bot joined) is :mod:`ingest.social.telegram` (MTProto, Telethon).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from cryptolake import topics
from cryptolake.errors import DataValidationError
from cryptolake.logs import register_secret
from cryptolake.retry import RetryPolicy
from cryptolake.schemas import SocialPostV1
from cryptolake.types import to_ms
from ingest.connectors.base import Clock, Connector, HttpClient, Item, epoch_s_to_ms, make_record, require_env, utc_now


@dataclass
class BotOffset:
    """The next ``update_id`` to ask for (0: every update the server still holds)."""

    value: int = 0


def channel_name(chat: dict[str, Any]) -> str:
    """A channel's public @username, else its numeric id (private channels have no username)."""
    return str(chat.get("username") or chat["id"])


def channel_post_payload(post: dict[str, Any], ingest_ms: int) -> dict[str, Any]:
    """A Bot API ``Message`` (a ``channel_post``) -> SocialPostV1 payload (same ids as the MTProto connector)."""
    chat = post["chat"]
    channel = channel_name(chat)
    if not isinstance(post.get("date"), int) or isinstance(post.get("date"), bool):
        raise DataValidationError("date", str(post.get("date"))[:80], "a channel post's date is unix seconds")
    created = epoch_s_to_ms(post["date"])
    reply = post.get("reply_to_message") or {}
    return {"schema_version": 1, "platform": "telegram", "post_id": f"{channel}/{post['message_id']}",
            "kind": "message", "channel": channel, "author": post.get("author_signature"),
            "text": post.get("text") or post.get("caption") or "",
            "url": f"https://t.me/{chat['username']}/{post['message_id']}" if chat.get("username") else None,
            "parent_id": f"{channel}/{reply['message_id']}" if reply.get("message_id") else None,
            "event_time": created, "available_time": created, "ingest_time": ingest_ms}


class TelegramBotConnector(Connector):
    """The ``channel_post`` updates the bot has not confirmed yet (at most ``max_pages`` calls of ``limit``)."""

    name = "telegram"
    topic = topics.SOCIAL_POSTS

    def __init__(self, offset: BotOffset, *, base_url: str = "https://api.telegram.org",
                 bot_token: str | None = None, limit: int = 100, max_pages: int = 10, clock: Clock = utc_now,
                 sleep: Callable[[float], None] = time.sleep, policy: RetryPolicy = RetryPolicy()) -> None:
        token = bot_token or require_env("TELEGRAM_BOT_TOKEN")
        register_secret(token)
        self.offset, self.limit, self.max_pages, self.clock = offset, limit, max_pages, clock
        self.path = f"/bot{token}/getUpdates"
        self.client = HttpClient(base_url, name=self.name, min_interval=0.05, sleep=sleep, policy=policy)

    def items(self) -> Iterator[Item]:
        for _ in range(self.max_pages):
            body = self.client.get_json(self.path, params={
                "offset": self.offset.value, "limit": self.limit, "timeout": 0,
                "allowed_updates": json.dumps(["channel_post"])})
            if not isinstance(body, dict) or body.get("ok") is not True or not isinstance(body.get("result"), list):
                raise DataValidationError("telegram.body", str(body)[:200], "not an ok getUpdates answer")
            updates = body["result"]
            ingest_ms = to_ms(self.clock())
            for u in updates:
                post = u.get("channel_post") if isinstance(u, dict) else None
                if post is None:
                    continue  # another update type (allowed_updates is a filter the server may widen)
                chat = post.get("chat") if isinstance(post, dict) else None
                hint = f"{channel_name(chat) if isinstance(chat, dict) and 'id' in chat else '?'}/" \
                       f"{post.get('message_id', '?') if isinstance(post, dict) else '?'}"
                yield make_record(SocialPostV1, post, lambda r: channel_post_payload(r, ingest_ms), hint)  # noqa: B023 (called immediately)
            ids = [u["update_id"] for u in updates if isinstance(u, dict) and isinstance(u.get("update_id"), int)]
            if ids:
                self.offset.value = max(ids) + 1  # the next call confirms these: the server drops them
            if len(updates) < self.limit:
                return
