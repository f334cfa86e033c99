"""Replays of the real social data in ``social/``: Reddit posts/comments and tweets.

Reddit ``created_date`` is naive (zone not stated); we treat it as UTC and say so here.
Ethereum tweets carry an explicit offset; Bitcoin tweets carry full v1.1 tweet/user fields.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from cryptolake import topics
from cryptolake.schemas import SocialPostV1
from cryptolake.types import to_ms
from ingest.connectors.base import Clock, Connector, Item, iso_to_ms, make_record, utc_now


def _naive_utc_ms(value: str) -> int:
    return iso_to_ms(value.replace(" ", "T") + "+00:00")


def reddit_payload(row: dict[str, Any], ingest_ms: int) -> dict[str, Any]:
    ts = _naive_utc_ms(row["created_date"])
    kind = {"post": "post", "comment": "comment"}[row["source_type"]]
    return {"schema_version": 1, "platform": "reddit", "post_id": row["unified_id"], "kind": kind,
            "channel": row["subreddit"].lower(), "author": row.get("author") or None, "text": row["text_content"],
            "event_time": ts, "available_time": ts, "ingest_time": ingest_ms}


def eth_tweet_payload(row: dict[str, Any], ingest_ms: int) -> dict[str, Any]:
    ts = iso_to_ms(row["Date"].replace(" ", "T"))
    return {"schema_version": 1, "platform": "x", "post_id": f"ethereum_tweets:{row['Unnamed: 0']}", "kind": "tweet",
            "channel": "ethereum", "author": row.get("User") or None, "text": row["Tweet"],
            "provider_sentiment": float(row["eth_polarity"]), "event_time": ts, "available_time": ts,
            "ingest_time": ingest_ms}


def btc_tweet_payload(row: dict[str, Any], ingest_ms: int) -> dict[str, Any]:
    ts = iso_to_ms(row["tweet_created_at"].replace(" ", "T"))
    return {"schema_version": 1, "platform": "x", "post_id": row["tweet_id_str"], "kind": "tweet",
            "channel": "bitcoin", "author": row.get("user_screen_name") or None,
            "author_followers": int(float(row["user_followers_count"])), "text": row["tweet_full_text"],
            "score": int(float(row["tweet_favorite_count"])), "reposts": int(float(row["tweet_retweet_count"])),
            "language": row.get("tweet_lang") or None, "event_time": ts, "available_time": ts,
            "ingest_time": ingest_ms}


_FORMATS = {"reddit": (",", reddit_payload, "unified_id"), "eth_tweets": (",", eth_tweet_payload, ""),
            "btc_tweets": (",", btc_tweet_payload, "tweet_id_str")}


class SocialReplay(Connector):
    """Rows of one social file (``fmt`` in reddit | eth_tweets | btc_tweets), optionally [since, until)."""

    name = "replay-social"
    topic = topics.SOCIAL_POSTS

    def __init__(self, path: Path, fmt: str, *, since: datetime | None = None, until: datetime | None = None,
                 clock: Clock = utc_now) -> None:
        if fmt not in _FORMATS:
            raise ValueError(f"unknown fmt={fmt!r}, expected one of {sorted(_FORMATS)}")
        self.path, self.fmt, self.since, self.until, self.clock = path, fmt, since, until, clock

    def items(self) -> Iterator[Item]:
        sep, mapper, key_col = _FORMATS[self.fmt]
        df = pd.read_csv(self.path, sep=sep, dtype=str, keep_default_na=False)
        ingest_ms = to_ms(self.clock())
        lo = to_ms(self.since) if self.since else None
        hi = to_ms(self.until) if self.until else None
        for row in df.to_dict("records"):
            rec = make_record(SocialPostV1, row, lambda r: mapper(r, ingest_ms), str(row.get(key_col, "?")))
            if isinstance(rec, SocialPostV1) and ((lo is not None and rec.event_time < lo)
                                                  or (hi is not None and rec.event_time >= hi)):
                continue
            yield rec
