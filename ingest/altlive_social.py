"""Reddit as a long-running connector: the real r/<sub>/new posts of ``social/reddit`` replayed to a local API.

The local server (:func:`ingest.testing_servers.apis.reddit_app`) serves the REAL posts of the shared data set
as Reddit Listing items, a batch of them becoming "new" at each poll in their creation order; the poll runs the
real :class:`ingest.social.reddit.RedditConnector` (OAuth, ``after`` paging) over the batch's time window.
The files' ``created_date`` is naive; it is read as UTC (as in :mod:`ingest.social.replay`).

The X, Telegram and Discord replays below work the same way. X replays the REAL bitcoin tweets. The shared data
holds NO Telegram or Discord messages: those two replay SUBSTITUTE text, real but from another platform (the
Ethereum tweets as a Telegram channel's posts, the Reddit comments as Discord messages), and their channel names
say so (``substitute_ethereum_tweets``, ``substitute-reddit-comments-<sub>``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from ingest.social.discord import DISCORD_EPOCH_MS, snowflake_ms

SUBREDDITS = ("bitcoin", "cryptocurrency", "ethereum", "solana")


def reddit_posts(data_root: Path) -> list[dict[str, Any]]:
    """The real posts (not comments) of ``social/reddit/*.csv.gz`` as Reddit ``t3`` items, oldest first, one per id."""
    frames = [pd.read_csv(p, dtype=str, keep_default_na=False) for p in sorted((data_root / "social" / "reddit")
                                                                              .glob("*.csv.gz"))]
    df = pd.concat(frames).drop_duplicates("unified_id")
    df = df[(df.source_type == "post") & df.subreddit.str.lower().isin(SUBREDDITS)]
    out = []
    for r in df.to_dict("records"):
        pid = r["unified_id"].removeprefix("p_")
        sub = r["subreddit"].lower()
        created = datetime.fromisoformat(r["created_date"]).replace(tzinfo=UTC).timestamp()
        out.append({"id": pid, "name": f"t3_{pid}", "title": r["text_content"], "selftext": "",
                    "author": r["author"] or None, "subreddit": sub, "created_utc": created,
                    "permalink": f"/r/{sub}/comments/{pid}/"})
    return sorted(out, key=lambda p: (p["created_utc"], p["name"]))


def post_key(post: dict[str, Any]) -> str:
    """The topic key the connector gives a post (``SocialPostV1.key``)."""
    return f"reddit:{post['name']}"


class RedditReplay:
    """The Reddit flow replayed: ``release(n)`` makes the next ``n`` real posts visible (newest first per sub)."""

    def __init__(self, posts: list[dict[str, Any]], seen: set[str] | None = None) -> None:
        # A restart resumes after the last post of the flow whose key the topic already holds.
        done = [i for i, p in enumerate(posts) if post_key(p) in (seen or ())]
        self.pending = list(posts[done[-1] + 1:] if done else posts)
        self.visible: dict[str, list[dict[str, Any]]] = {s: [] for s in SUBREDDITS}
        self.since = self.until = datetime.fromtimestamp(0, UTC)

    def release(self, n: int) -> int:
        """The next ``n`` posts become new; [since, until] is the batch's creation window (what a poll asks)."""
        batch, self.pending = self.pending[:n], self.pending[n:]
        for p in batch:
            self.visible.setdefault(p["subreddit"], []).insert(0, p)
        if batch:
            times = [float(p["created_utc"]) for p in batch if isinstance(p["created_utc"], (int, float))]
            self.since = datetime.fromtimestamp(min(times), UTC) if times else self.since
            self.until = datetime.fromtimestamp(max(times), UTC) if times else self.until
        return len(batch)


# --- X: the REAL bitcoin tweets (social/twitter/bitcoin_tweets.csv.gz, full v1.1 objects) as API v2 objects ----
def x_tweets(data_root: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The real bitcoin tweets as X API v2 ``data`` items (oldest first, one per id) and their ``includes.users``."""
    df = pd.read_csv(data_root / "social" / "twitter" / "bitcoin_tweets.csv.gz", dtype=str, keep_default_na=False)
    tweets: dict[str, dict[str, Any]] = {}
    users: dict[str, dict[str, Any]] = {}
    for r in df.to_dict("records"):
        created = datetime.fromisoformat(r["tweet_created_at"]).astimezone(UTC)
        t: dict[str, Any] = {"id": r["tweet_id_str"], "text": r["tweet_full_text"], "author_id": r["user_id_str"],
                             "created_at": created.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "lang": r["tweet_lang"],
                             "public_metrics": {"retweet_count": int(float(r["tweet_retweet_count"])),
                                                "like_count": int(float(r["tweet_favorite_count"]))}}
        if r["tweet_in_reply_to_status_id_str"]:
            t["referenced_tweets"] = [{"type": "replied_to", "id": r["tweet_in_reply_to_status_id_str"]}]
        tweets.setdefault(t["id"], t)
        users.setdefault(r["user_id_str"], {"id": r["user_id_str"], "username": r["user_screen_name"],
                                            "name": r["user_name"], "public_metrics": {
                                                "followers_count": int(float(r["user_followers_count"])),
                                                "following_count": int(float(r["user_friends_count"]))}})
    return sorted(tweets.values(), key=lambda t: (t["created_at"], t["id"])), list(users.values())


def tweet_key(tweet: dict[str, Any]) -> str:
    """The topic key the X connector gives a tweet."""
    return f"x:{tweet['id']}"


def _resume(flow: list[dict[str, Any]], key: Callable[[dict[str, Any]], str], seen: set[str] | None) -> list[Any]:
    """The flow after its last record whose key the topic already holds (a restart resumes there)."""
    done = [i for i, item in enumerate(flow) if key(item) in (seen or ())]
    return list(flow[done[-1] + 1:] if done else flow)


class XReplay:
    """The X flow replayed: ``release(n)`` makes the next ``n`` real tweets visible to the local recent search."""

    def __init__(self, tweets: list[dict[str, Any]], seen: set[str] | None = None) -> None:
        self.pending = _resume(tweets, tweet_key, seen)
        self.visible: list[dict[str, Any]] = []  # newest first, as recent search answers
        self.since = self.until = datetime.fromtimestamp(0, UTC)

    def release(self, n: int) -> int:
        """The next ``n`` tweets become new; [since, until) is the batch's window (end_time is exclusive)."""
        batch, self.pending = self.pending[:n], self.pending[n:]
        self.visible[:0] = list(reversed(batch))
        times = []
        for t in batch:
            try:
                times.append(datetime.fromisoformat(str(t["created_at"]).replace("Z", "+00:00")))
            except (KeyError, ValueError):
                continue  # a corrupted record: the server serves it as-is and the connector rejects it
        if times:
            self.since, self.until = min(times), max(times) + timedelta(seconds=1)
        return len(batch)


# --- Telegram: SUBSTITUTE data. The shared data holds no Telegram messages, so the local Bot API replays the REAL
# Ethereum tweets (social/twitter/ethereum_tweets.csv) as the posts of a channel named for what it is. ------------
TELEGRAM_SUBSTITUTE_CHANNEL = "substitute_ethereum_tweets"


def telegram_substitute_updates(data_root: Path) -> list[dict[str, Any]]:
    """SUBSTITUTE: the real Ethereum tweets as Bot API ``channel_post`` updates, oldest first (ids in time order)."""
    df = pd.read_csv(data_root / "social" / "twitter" / "ethereum_tweets.csv", dtype=str, keep_default_na=False)
    rows = sorted(((datetime.fromisoformat(r["Date"]).astimezone(UTC), int(r["Unnamed: 0"]), r)
                   for r in df.to_dict("records")), key=lambda x: (x[0], x[1]))
    chat = {"id": -1001000000001, "title": "SUBSTITUTE: real Ethereum tweets (no Telegram data in the shared set)",
            "username": TELEGRAM_SUBSTITUTE_CHANNEL, "type": "channel"}
    return [{"update_id": i + 1, "channel_post": {"message_id": i + 1, "sender_chat": chat, "chat": chat,
                                                  "date": int(ts.timestamp()), "text": r["Tweet"],
                                                  "author_signature": r["User"] or None}}
            for i, (ts, _, r) in enumerate(rows)]


def telegram_key(update: dict[str, Any]) -> str:
    """The topic key the Telegram connector gives an update's channel post."""
    post = update["channel_post"]
    return f"telegram:{post['chat'].get('username') or post['chat']['id']}/{post['message_id']}"


class TelegramReplay:
    """The channel's posts replayed: ``release(n)`` hands the next ``n`` updates to the local Bot API."""

    def __init__(self, updates: list[dict[str, Any]], seen: set[str] | None = None) -> None:
        self.pending = _resume(updates, telegram_key, seen)
        self.visible: list[dict[str, Any]] = []  # oldest first, as getUpdates answers

    def release(self, n: int) -> int:
        batch, self.pending = self.pending[:n], self.pending[n:]
        self.visible.extend(batch)
        return len(batch)


# --- Discord: SUBSTITUTE data. The shared data holds no Discord messages, so the local API replays the REAL Reddit
# comments (social/reddit, source_type = comment; the Reddit connector replays only the posts) as the messages of
# one channel per subreddit, whose id names the substitution. --------------------------------------------------
def discord_substitute_channel(subreddit: str) -> str:
    """The local channel id of a subreddit's comments (a label, not a Discord snowflake)."""
    return f"substitute-reddit-comments-{subreddit}"


def discord_substitute_messages(data_root: Path) -> dict[str, list[dict[str, Any]]]:
    """SUBSTITUTE: the real Reddit comments as Discord Message objects per channel, oldest first.

    The id is a snowflake built from the comment's creation time (plus a sequence within the millisecond), so
    ``before`` paging and the connector's time window work as on Discord.
    """
    frames = [pd.read_csv(p, dtype=str, keep_default_na=False) for p in sorted((data_root / "social" / "reddit")
                                                                              .glob("*.csv.gz"))]
    df = pd.concat(frames).drop_duplicates("unified_id")
    df = df[(df.source_type == "comment") & df.subreddit.str.lower().isin(SUBREDDITS)]
    rows = sorted(((datetime.fromisoformat(r["created_date"]).replace(tzinfo=UTC), r["unified_id"], r)
                   for r in df.to_dict("records")), key=lambda x: (x[0], x[1]))
    out: dict[str, list[dict[str, Any]]] = {discord_substitute_channel(s): [] for s in SUBREDDITS}
    last_ms, seq = -1, 0
    for ts, uid, r in rows:
        ms = int(ts.timestamp() * 1000)
        seq = seq + 1 if ms == last_ms else 0
        last_ms = ms
        channel = discord_substitute_channel(r["subreddit"].lower())
        out[channel].append({"id": str(((ms - DISCORD_EPOCH_MS) << 22) + seq), "channel_id": channel, "type": 0,
                             "content": r["text_content"], "timestamp": ts.isoformat(),
                             "author": {"id": uid, "username": r["author"] or None}, "reactions": []})
    return out


def discord_key(message: dict[str, Any]) -> str:
    """The topic key the Discord connector gives a message."""
    return f"discord:{message['id']}"


class DiscordReplay:
    """The channels' messages replayed in time order: ``release(n)`` makes the next ``n`` visible."""

    def __init__(self, messages: dict[str, list[dict[str, Any]]], seen: set[str] | None = None) -> None:
        flow = sorted((m for ms in messages.values() for m in ms), key=lambda m: int(m["id"]))
        self.pending = _resume(flow, discord_key, seen)
        self.visible: dict[str, list[dict[str, Any]]] = {c: [] for c in messages}
        self.since = self.until = datetime.fromtimestamp(0, UTC)

    def release(self, n: int) -> int:
        """The next ``n`` messages become new; [since, until] is the batch's creation window."""
        batch, self.pending = self.pending[:n], self.pending[n:]
        for m in batch:
            self.visible.setdefault(m["channel_id"], []).append(m)
        if batch:
            lo, hi = int(batch[0]["id"]), int(batch[-1]["id"])
            self.since = datetime.fromtimestamp(snowflake_ms(str(lo)) / 1000, UTC)
            self.until = datetime.fromtimestamp(snowflake_ms(str(hi)) / 1000, UTC)
        return len(batch)
