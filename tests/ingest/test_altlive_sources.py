"""The long-running Reddit and chain (explorer daily figures) connectors: their local servers replay the REAL
posts and days of ../shared/data a batch per poll; each record is published once, a restart resumes after
what the topic holds, and a malformed record is dead-lettered once with a reason naming its field."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from cryptolake.retry import RetryPolicy
from cryptolake.settings import Settings
from ingest.altlive import PollingPublisher
from ingest.altlive_chain import ChainReplay, etherscan_days
from ingest.altlive_social import SUBREDDITS, RedditReplay, post_key, reddit_posts
from ingest.chain.explorer import ExplorerDailyStatsConnector
from ingest.social.reddit import RedditConnector
from ingest.testing_servers import apis
from ingest.testing_servers.server import LocalServer

FAST = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0, jitter=0.0)


class _Producer:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.dead: list[tuple[str, str]] = []

    def send_message(self, msg: Any) -> None:
        self.sent.append(msg.key())

    def dead_letter(self, topic: str, key: str, raw: str, reason: str) -> None:
        self.dead.append((key, reason))


def _reddit_make(replay: RedditReplay, url: str) -> Any:
    def make() -> RedditConnector:
        conn = RedditConnector(list(SUBREDDITS), replay.since, replay.until, auth_url=url, api_url=url,
                               client_id="cid", client_secret="csecret", policy=FAST, sleep=lambda s: None)
        conn.client.min_interval = 0
        return conn
    return make


def _chain_make(replay: ChainReplay, url: str, chain: str) -> Any:
    def make() -> ExplorerDailyStatsConnector:
        return ExplorerDailyStatsConnector(chain, replay.since, replay.until, base_url=url, api_key="es",
                                           policy=FAST, sleep=lambda s: None)
    return make


def _first_days(days: dict[str, dict[str, str]], n: int) -> dict[str, dict[str, str]]:
    keep = sorted(days["dailytx"])[:n]
    return {a: {d: v[d] for d in keep if d in v} for a, v in days.items()}


def test_reddit_polls_publish_each_real_post_once_and_resume_after_a_restart(shared_data: Path) -> None:
    posts = reddit_posts(shared_data)
    assert len(posts) > 1500 and posts[0]["created_utc"] <= posts[-1]["created_utc"]
    posts = posts[:120]
    posts[40] = {**posts[40], "title": "   "}  # malformed: blank text, dead-lettered once
    replay = RedditReplay(posts)
    with LocalServer(apis.reddit_app(replay.visible, "cid", "csecret", apis.ApiState(rate_limit_first=0))) as srv:
        first = _Producer()
        pub = PollingPublisher(_reddit_make(replay, srv.url), first)
        for _ in range(3):
            replay.release(30)
            pub.poll()
        assert len(first.sent) == 89 and len(first.dead) == 1 and "text" in first.dead[0][1]
        assert set(first.sent) == {post_key(p) for p in posts[:90]} - {post_key(posts[40])}
    again = RedditReplay(posts, seen=set(first.sent))  # a restart: the replay resumes after the topic's keys
    assert len(again.pending) == 30
    with LocalServer(apis.reddit_app(again.visible, "cid", "csecret", apis.ApiState(rate_limit_first=0))) as srv:
        second = _Producer()
        again.release(30)
        PollingPublisher(_reddit_make(again, srv.url), second, seen=set(first.sent)).poll()
    assert len(second.sent) == 30 and not set(second.sent) & set(first.sent) and not second.dead


def test_chain_polls_publish_each_real_daily_figure_once_and_resume_after_a_restart(shared_data: Path) -> None:
    days = etherscan_days(shared_data)
    assert set(days) == {"dailytx", "dailyavggasprice", "dailygasused"} and len(days["dailytx"]) > 3000
    days = _first_days(days, 60)
    n_figures = sum(len(v) for v in days.values())
    days["dailytx"] = {**days["dailytx"], sorted(days["dailytx"])[10]: "nan"}  # malformed value
    replay = ChainReplay(days, "ethereum")
    with LocalServer(apis.explorer_app(replay.visible, "es", apis.ApiState(rate_limit_first=0))) as srv:
        first = _Producer()
        pub = PollingPublisher(_chain_make(replay, srv.url, "ethereum"), first)
        for _ in range(3):
            replay.release(15)
            pub.poll()
    first45 = sorted(days["dailytx"])[:45]
    expected = {f"ethereum:{m}:{d}" for d in first45 for a, m in (("dailytx", "tx_count"),
                ("dailyavggasprice", "avg_gas_price_wei"), ("dailygasused", "gas_used")) if d in days[a]}
    assert len(first.dead) == 1 and "value" in first.dead[0][1]
    assert first.dead[0][0] == f"ethereum:tx_count:{first45[10]}"
    assert set(first.sent) == expected - {first.dead[0][0]} and len(first.sent) == len(expected) - 1
    again = ChainReplay(days, "ethereum", seen=set(first.sent))
    assert again.pending[0] == first45[-1]  # resumes at the last day the topic holds (its figures are skipped)
    with LocalServer(apis.explorer_app(again.visible, "es", apis.ApiState(rate_limit_first=0))) as srv:
        second = _Producer()
        again.release(16)
        PollingPublisher(_chain_make(again, srv.url, "ethereum"), second, seen=set(first.sent)).poll()
    assert not set(second.sent) & set(first.sent) and not second.dead
    assert len(first.sent) + len(second.sent) == n_figures - 1


def _keys(settings: Settings, topic: str, prefix: str) -> list[tuple[str, str]]:
    from cryptolake.bus import consumer

    cons = consumer(topic, group_id=None, settings=settings, consumer_timeout_ms=3000)
    try:
        return [(m.key, m.value) for m in cons if m.key and m.key.startswith(prefix)]
    finally:
        cons.close()


@pytest.mark.kafka
def test_one_producer_publishes_reddit_and_chain_once_across_a_restart(
        shared_data: Path, lake_settings: Settings, kafka_bootstrap: str) -> None:
    from cryptolake import topics
    from cryptolake.bus import Producer, ensure_topics
    from ingest.published import high_water_marks

    tag = "t" + secrets.token_hex(4)  # a unique prefix: only this test's records are counted
    posts = [{**p, "id": tag + p["id"], "name": f"t3_{tag}{p['id']}"} for p in reddit_posts(shared_data)[:40]]
    posts[7] = {**posts[7], "title": ""}  # malformed: no text
    days = _first_days(etherscan_days(shared_data), 12)
    chain = f"ethereum-{tag}"
    ensure_topics([topics.SOCIAL_POSTS, topics.CHAIN_DAILY_STATS], lake_settings)

    def run(polls: int) -> None:
        seen_social = set(high_water_marks(topics.SOCIAL_POSTS, lake_settings))
        seen_chain = set(high_water_marks(topics.CHAIN_DAILY_STATS, lake_settings))
        social, daily = RedditReplay(posts, seen_social), ChainReplay(days, chain, seen_chain)
        with LocalServer(apis.reddit_app(social.visible, "cid", "csecret", apis.ApiState(rate_limit_first=0))) as rs, \
                LocalServer(apis.explorer_app(daily.visible, "es", apis.ApiState(rate_limit_first=0))) as es, \
                Producer(lake_settings, client_id="test-altlive-sources") as producer:
            pubs = [(social.release, PollingPublisher(_reddit_make(social, rs.url), producer, seen_social)),
                    (daily.release, PollingPublisher(_chain_make(daily, es.url, chain), producer, seen_chain))]
            for _ in range(polls):
                for release, pub in pubs:
                    release(8)
                    pub.poll()
            producer.flush()
            assert set(producer.stats.sent) <= {topics.SOCIAL_POSTS, topics.CHAIN_DAILY_STATS}

    run(2)  # 16 posts, 8 days
    run(4)  # a restart: resumes after what the topics hold (24 posts, 4 new days)
    social_keys = [k for k, _ in _keys(lake_settings, topics.SOCIAL_POSTS, f"reddit:t3_{tag}")]
    chain_keys = [k for k, _ in _keys(lake_settings, topics.CHAIN_DAILY_STATS, f"{chain}:")]
    assert sorted(social_keys) == sorted({post_key(p) for p in posts} - {post_key(posts[7])})
    assert len(chain_keys) == len(set(chain_keys)) == sum(len(v) for v in days.values())
    dead = _keys(lake_settings, topics.dlq(topics.SOCIAL_POSTS), f"t3_{tag}")
    assert len(dead) == 1 and "text" in dead[0][1]
