"""Reddit as a long-running connector: the real r/<sub>/new posts of ``social/reddit`` replayed to a local API.

The local server (:func:`ingest.testing_servers.apis.reddit_app`) serves the REAL posts of the shared data set
as Reddit Listing items, a batch of them becoming "new" at each poll in their creation order; the poll runs the
real :class:`ingest.social.reddit.RedditConnector` (OAuth, ``after`` paging) over the batch's time window.
The files' ``created_date`` is naive; it is read as UTC (as in :mod:`ingest.social.replay`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

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
