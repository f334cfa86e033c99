"""Telegram channel connector through Telethon's client API (MTProto, user or bot session).

Auth from the environment: ``TELEGRAM_API_ID``, ``TELEGRAM_API_HASH`` and a saved
``TELEGRAM_SESSION`` (a Telethon StringSession; create it once interactively with
``telethon.sessions.StringSession``). Pagination walks a channel backwards with
``get_messages(limit=, offset_id=)``; ``FloodWaitError`` becomes
:class:`~cryptolake.errors.RateLimitedError` with its wait and is retried by
:func:`cryptolake.retry.call_with_retry`. Media-only messages (no text) are counted and
logged, not emitted: they carry nothing to score.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from cryptolake import topics
from cryptolake.errors import AuthenticationError, NetworkError, RateLimitedError
from cryptolake.logs import get_logger
from cryptolake.retry import RetryPolicy, call_with_retry
from cryptolake.schemas import SocialPostV1
from cryptolake.types import to_ms
from ingest.connectors.base import Clock, Connector, Item, make_record, require_env, utc_now

log = get_logger(__name__)


def client_from_env() -> Any:
    """A connected-on-demand TelegramClient from ``TELEGRAM_API_ID/_API_HASH/_SESSION``."""
    from telethon import TelegramClient
    from telethon.sessions import StringSession

    return TelegramClient(StringSession(require_env("TELEGRAM_SESSION")), int(require_env("TELEGRAM_API_ID")),
                          require_env("TELEGRAM_API_HASH"))


def message_to_payload(channel: str, m: Any, ingest_ms: int) -> dict[str, Any]:
    """Map a ``telethon.tl.types.Message`` to a SocialPostV1 payload."""
    if m.date is None:
        raise ValueError("message has no date")
    created = to_ms(m.date)
    reactions = sum(r.count for r in m.reactions.results) if m.reactions is not None else None
    return {"schema_version": 1, "platform": "telegram", "post_id": f"{channel}/{m.id}", "kind": "message",
            "channel": channel, "author": m.post_author, "text": m.message or "",
            "url": f"https://t.me/{channel.lstrip('@')}/{m.id}",
            "parent_id": f"{channel}/{m.reply_to.reply_to_msg_id}" if m.reply_to is not None
            and getattr(m.reply_to, "reply_to_msg_id", None) else None,
            "score": reactions, "replies": m.replies.replies if m.replies is not None else None,
            "reposts": m.forwards, "views": m.views, "event_time": created, "available_time": created,
            "ingest_time": ingest_ms}


class TelegramChannelConnector(Connector):
    """Messages of public ``channels`` posted in [since, until], newest first down to ``since``."""

    name = "telegram"
    topic = topics.SOCIAL_POSTS

    def __init__(self, channels: list[str], since: datetime, until: datetime, *, client: Any = None,
                 page_size: int = 100, max_pages: int = 100, clock: Clock = utc_now,
                 sleep: Callable[[float], None] = time.sleep, policy: RetryPolicy = RetryPolicy()) -> None:
        self.client = client if client is not None else client_from_env()
        self.channels, self.page_size, self.max_pages = channels, page_size, max_pages
        self.since, self.until, self.clock, self.sleep, self.policy = since, until, clock, sleep, policy
        self.skipped_media = 0

    async def _page(self, channel: str, offset_id: int) -> list[Any]:
        from telethon import errors as terr

        try:
            return list(await self.client.get_messages(channel, limit=self.page_size, offset_id=offset_id,
                                                       offset_date=self.until))
        except terr.FloodWaitError as exc:
            raise RateLimitedError(f"telegram: flood wait {exc.seconds}s", retry_after=float(exc.seconds)) from exc
        except (terr.AuthKeyError, terr.UnauthorizedError) as exc:
            raise AuthenticationError(f"telegram: {exc}") from exc
        except (TimeoutError, ConnectionError, OSError) as exc:
            raise NetworkError(f"telegram: {type(exc).__name__}: {exc}") from exc

    def items(self) -> Iterator[Item]:
        loop = asyncio.new_event_loop()
        try:
            for channel in self.channels:
                offset_id = 0
                for _ in range(self.max_pages):
                    msgs = call_with_retry(lambda c=channel, o=offset_id: loop.run_until_complete(self._page(c, o)),  # type: ignore[misc]
                                           self.policy, what=f"telegram {channel}", sleep=self.sleep)
                    ingest_ms = to_ms(self.clock())
                    done = not msgs
                    for m in msgs:
                        if m.date is not None and m.date < self.since:
                            done = True
                            continue
                        if m.date is not None and not m.message:
                            self.skipped_media += 1
                            continue
                        yield make_record(SocialPostV1, m,
                                          lambda r, c=channel: message_to_payload(c, r, ingest_ms),  # type: ignore[misc]  # noqa: B023 (called immediately)
                                          f"{channel}/{m.id}")
                    if done or len(msgs) < self.page_size:
                        break
                    offset_id = min(m.id for m in msgs)
        finally:
            loop.close()
        if self.skipped_media:
            log.info("telegram.media_only_skipped", extra={"count": self.skipped_media})
