"""The long-running news connector's poll loop against the local NewsAPI serving the real headlines:
each headline is published once per poll flow, and a restart (the published keys) sends none again."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from cryptolake.retry import RetryPolicy
from ingest.altlive import NewsReplay, PollingPublisher, replay_articles
from ingest.news.newsapi import NewsApiConnector
from ingest.testing_servers import apis
from ingest.testing_servers.server import LocalServer

FAST = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0, jitter=0.0)


class _Producer:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.dead: list[tuple[str, str]] = []

    def send_message(self, msg) -> None:
        self.sent.append(msg.key())

    def dead_letter(self, topic, key, raw, reason) -> None:
        self.dead.append((key, reason))


def test_polls_publish_each_real_headline_once_across_a_restart(shared_data: Path) -> None:
    articles = replay_articles(shared_data)
    assert len(articles) > 5000 and articles[0]["publishedAt"] <= articles[-1]["publishedAt"]
    articles = articles[:120]
    articles[50] = {**articles[50], "publishedAt": "not a time"}  # one malformed item: dead-lettered once
    replay = NewsReplay(articles)
    with LocalServer(apis.newsapi_app(replay.visible, "k", apis.ApiState(rate_limit_first=0))) as srv:
        def make():
            return NewsApiConnector("bitcoin", datetime(2021, 1, 1, tzinfo=UTC), datetime(2023, 1, 1, tzinfo=UTC),
                                    base_url=srv.url, api_key="k", page_size=100, policy=FAST,
                                    sleep=lambda s: None)

        first = _Producer()
        pub = PollingPublisher(make, first)
        for _ in range(3):
            replay.release(30)
            pub.poll()
        assert len(first.sent) == 89 and len(first.dead) == 1 and "not a time" in first.dead[0][1]
        second = _Producer()  # a restart: the keys already in the topic are skipped
        again = PollingPublisher(make, second, seen=set(first.sent) | {k for k, _ in first.dead})
        replay.release(30)
        again.poll()
        assert len(second.sent) == 30 and not set(second.sent) & set(first.sent) and not second.dead
    assert len(set(first.sent + second.sent)) == 119
