"""Social connectors against local servers (Reddit, X, Discord) and Telethon's real message types."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from telethon.errors import FloodWaitError
from telethon.tl import types as tl

from cryptolake.retry import RetryPolicy
from cryptolake.schemas import SocialPostV1
from ingest.connectors.base import ListSink
from ingest.social.discord import DISCORD_EPOCH_MS, DiscordHistoryConnector, snowflake_ms
from ingest.social.reddit import RedditConnector
from ingest.social.telegram import TelegramChannelConnector
from ingest.social.x import XRecentSearchConnector
from ingest.testing_servers import apis
from ingest.testing_servers.server import LocalServer

FAST = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0, jitter=0.0)
CLOCK = lambda: datetime(2025, 11, 1, tzinfo=UTC)  # noqa: E731
NO_SLEEP = lambda s: None  # noqa: E731


@pytest.fixture(scope="module")
def reddit_rows(shared_data: Path) -> pd.DataFrame:
    """Real r/cryptocurrency posts (naive times in the file; treated as UTC)."""
    df = pd.read_csv(shared_data / "social" / "reddit" / "test_data.csv.gz")
    posts = df[(df.source_type == "post") & (df.subreddit == "cryptocurrency")].copy()
    posts["ts"] = pd.to_datetime(posts.created_date).dt.tz_localize("UTC")
    return posts.sort_values("ts", ascending=False).head(23).reset_index(drop=True)


def test_reddit_oauth_then_after_pagination_429_and_malformed(reddit_rows: pd.DataFrame) -> None:
    posts = [{"id": r.unified_id[2:], "name": f"t3_{r.unified_id[2:]}", "title": r.text_content, "selftext": "",
              "author": r.author, "subreddit": "CryptoCurrency", "created_utc": r.ts.timestamp(), "score": i,
              "num_comments": 2 * i, "permalink": f"/r/CryptoCurrency/comments/{r.unified_id[2:]}/x/"}
             for i, r in enumerate(reddit_rows.itertuples())]
    posts[5]["created_utc"] = "soon"  # malformed
    state = apis.ApiState(rate_limit_first=1)
    with LocalServer(apis.reddit_app({"CryptoCurrency": posts}, "cid", "csecret-123", state)) as srv:
        conn = RedditConnector(["CryptoCurrency"], datetime(2025, 10, 1, tzinfo=UTC), CLOCK(), auth_url=srv.url,
                               api_url=srv.url, client_id="cid", client_secret="csecret-123", page_size=10,
                               clock=CLOCK, sleep=NO_SLEEP, policy=FAST)
        conn.client.min_interval = 0
        sink = ListSink()
        conn.run(sink)
    assert len(sink.accepted) == 22 and len(sink.quarantine) == 1 and "soon" in sink.quarantine[0].reason
    afters = [r["query"].get("after") for r in state.requests if r["path"].startswith("/r/")]
    assert afters == [None, None, f"t3_{posts[9]['id']}", f"t3_{posts[19]['id']}"]
    p = sink.accepted[0]
    assert isinstance(p, SocialPostV1) and p.channel == "cryptocurrency" and p.text == reddit_rows.text_content[0]
    assert p.event_time == int(reddit_rows.ts[0].timestamp() * 1000)


@pytest.fixture(scope="module")
def tweets(shared_data: Path) -> pd.DataFrame:
    df = pd.read_csv(shared_data / "social" / "twitter" / "bitcoin_tweets.csv.gz", dtype={"tweet_id_str": str,
                                                                                          "user_id_str": str})
    return df.head(25).reset_index(drop=True)


def test_x_recent_search_next_token_429_and_malformed(tweets: pd.DataFrame) -> None:
    data = [{"id": r.tweet_id_str, "text": r.tweet_full_text, "author_id": r.user_id_str, "lang": "en",
             "created_at": pd.Timestamp(r.tweet_created_at).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S.000Z"),
             "public_metrics": {"retweet_count": int(r.tweet_retweet_count), "reply_count": 0,
                                "like_count": int(r.tweet_favorite_count), "quote_count": 0}}
            for r in tweets.itertuples()]
    users = [{"id": r.user_id_str, "username": r.user_screen_name, "name": r.user_name,
              "public_metrics": {"followers_count": int(r.user_followers_count)}} for r in tweets.itertuples()]
    del data[11]["text"]  # malformed
    state = apis.ApiState(rate_limit_first=1)
    with LocalServer(apis.x_app(data, users, "bearer-abc", state)) as srv:
        conn = XRecentSearchConnector("bitcoin", datetime(2021, 11, 10, tzinfo=UTC),
                                      datetime(2021, 11, 11, tzinfo=UTC), base_url=srv.url, bearer_token="bearer-abc",
                                      page_size=10, clock=CLOCK, sleep=NO_SLEEP, policy=FAST)
        conn.client.min_interval = 0
        sink = ListSink()
        conn.run(sink)
    assert len(sink.accepted) == 24 and len(sink.quarantine) == 1 and "text" in sink.quarantine[0].reason
    assert [r["query"].get("next_token") for r in state.requests] == [None, None, "tok10", "tok20"]
    t = sink.accepted[0]
    assert isinstance(t, SocialPostV1) and t.author == tweets.user_screen_name[0]
    assert t.author_followers == int(tweets.user_followers_count[0]) and t.reposts == int(tweets.tweet_retweet_count[0])


def _snowflake(ts: datetime, seq: int) -> str:
    return str(((int(ts.timestamp() * 1000) - DISCORD_EPOCH_MS) << 22) + seq)


def test_discord_before_pagination_429_and_malformed(reddit_rows: pd.DataFrame) -> None:
    # Real Reddit texts re-served as Discord messages (the shape is Discord's; the texts are Reddit's).
    msgs = [{"id": _snowflake(r.ts.to_pydatetime(), i), "channel_id": "42", "type": 0, "content": r.text_content,
             "timestamp": r.ts.isoformat(), "author": {"id": "7", "username": r.author},
             "reactions": [{"count": i % 3, "emoji": {"name": "🔥"}}]} for i, r in enumerate(reddit_rows.itertuples())]
    msgs[4]["timestamp"] = None  # malformed
    state = apis.ApiState(rate_limit_first=1)
    with LocalServer(apis.discord_app({"42": msgs}, "bot-tok-9", state)) as srv:
        conn = DiscordHistoryConnector(["42"], datetime(2025, 10, 1, tzinfo=UTC), CLOCK(),
                                       base_url=srv.url + "/api/v10",
                                       bot_token="bot-tok-9", page_size=10, clock=CLOCK, sleep=NO_SLEEP, policy=FAST)
        conn.client.min_interval = 0
        sink = ListSink()
        conn.run(sink)
    assert len(sink.accepted) == 22 and len(sink.quarantine) == 1
    befores = [int(r["query"]["before"]) for r in state.requests]
    assert len(befores) == 4 and befores[1] == befores[0] and befores[2] > befores[3]
    assert snowflake_ms(msgs[0]["id"]) == int(reddit_rows.ts[0].timestamp() * 1000)


class _Transport:
    """Stands in for the MTProto network only: serves real ``telethon.tl.types.Message`` objects
    the way ``TelegramClient.get_messages`` does (newest first, ids below ``offset_id``)."""

    def __init__(self, messages: list[tl.Message], flood_once: bool) -> None:
        self.messages = sorted(messages, key=lambda m: m.id, reverse=True)
        self.flood_once = flood_once
        self.calls: list[dict[str, Any]] = []

    async def get_messages(self, entity: str, limit: int, offset_id: int = 0,
                           offset_date: datetime | None = None) -> list[tl.Message]:
        self.calls.append({"offset_id": offset_id, "limit": limit})
        if self.flood_once:
            self.flood_once = False
            raise FloodWaitError(request=None, capture=3)
        rows = [m for m in self.messages if (offset_id == 0 or m.id < offset_id)
                and (offset_date is None or m.date is None or m.date < offset_date)]
        await asyncio.sleep(0)
        return rows[:limit]


def test_telegram_maps_real_message_types_pages_and_survives_flood_wait(reddit_rows: pd.DataFrame) -> None:
    base = datetime(2025, 10, 20, tzinfo=UTC)
    peer = tl.PeerChannel(channel_id=1001)
    msgs = [tl.Message(id=100 + i, peer_id=peer, date=base + timedelta(minutes=i), message=r.text_content,
                       views=1000 + i, forwards=i, replies=tl.MessageReplies(replies=i, replies_pts=0),
                       reactions=tl.MessageReactions(results=[tl.ReactionCount(reaction=tl.ReactionEmoji("👍"),
                                                                                count=2 * i)]),
                       reply_to=tl.MessageReplyHeader(reply_to_msg_id=100) if i == 3 else None)
            for i, r in enumerate(reddit_rows.itertuples())]
    msgs[6].date = None  # malformed
    msgs[8].message = ""  # media-only: counted, not emitted
    waits: list[float] = []
    transport = _Transport(msgs, flood_once=True)
    conn = TelegramChannelConnector(["cryptochan"], datetime(2025, 10, 1, tzinfo=UTC), CLOCK(), client=transport,
                                    page_size=10, clock=CLOCK, sleep=waits.append, policy=FAST)
    sink = ListSink()
    conn.run(sink)
    assert waits == [3.0]  # FloodWaitError's seconds honoured through cryptolake.retry
    assert [c["offset_id"] for c in transport.calls] == [0, 0, 113, 103]
    assert len(sink.accepted) == 21 and len(sink.quarantine) == 1 and conn.skipped_media == 1
    by_id = {p.post_id: p for p in sink.accepted if isinstance(p, SocialPostV1)}
    m3 = by_id["cryptochan/103"]
    assert (m3.views, m3.reposts, m3.replies, m3.score, m3.parent_id) == (1003, 3, 3, 6, "cryptochan/100")
    assert m3.event_time == int((base + timedelta(minutes=3)).timestamp() * 1000)
