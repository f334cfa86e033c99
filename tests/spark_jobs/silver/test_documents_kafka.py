"""End to end on REAL text: replay (headlines of 10 Jan 2022 + a few Ethereum tweets) -> cryptolake.bus.Producer
-> Kafka -> land_topic / land_dead_letters -> run_silver_documents; malformed records reach a quarantine
table with their reason while the valid ones land; a re-run adds nothing.

The broker may carry these same documents from earlier runs (the landing checkpoint is new per test
session and starts at the earliest offset), and other tests of the session write January-2022 bronze rows
too, so assertions are on this run's keys and on silver's doc_key uniqueness, which holds however many
times a document was delivered.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cryptolake import topics
from cryptolake.bus import Producer, ensure_topics
from cryptolake.schemas import Message
from cryptolake.settings import Settings
from cryptolake.tables import SILVER_DOCUMENTS, bronze_spec, dead_letter_spec
from ingest.connectors.base import ListSink, ProducerSink
from ingest.news.replay import CryptoNewsReplay
from ingest.social.replay import SocialReplay
from spark_jobs.bronze.landing import land_dead_letters, land_topic
from spark_jobs.silver.documents import run_silver_documents

pytestmark = [pytest.mark.kafka, pytest.mark.spark]

CLOCK = lambda: datetime(2026, 1, 1, tzinfo=UTC)  # noqa: E731
DAY = (datetime(2022, 1, 10, tzinfo=UTC), datetime(2022, 1, 11, tzinfo=UTC))
MONTH = (datetime(2022, 1, 1, tzinfo=UTC), datetime(2022, 2, 1, tzinfo=UTC))


def _keys(spark: Any, path: str, where: str = "true") -> list[str]:
    return [r[0] for r in spark.read.format("delta").load(path).where(where).select("key").collect()]


def test_replayed_text_lands_in_silver_and_malformed_records_are_quarantined_with_reasons(
        kafka_bootstrap: str, spark: Any, lake_settings: Settings, shared_data: Path) -> None:
    run = uuid.uuid4().hex[:8]
    sink = ListSink()
    CryptoNewsReplay(shared_data / "news" / "cryptonews.csv.gz", since=DAY[0], until=DAY[1], clock=CLOCK).run(sink)
    n_news = len(sink.accepted)
    tweets = ListSink()
    SocialReplay(shared_data / "social" / "twitter" / "ethereum_tweets.csv", "eth_tweets", since=MONTH[0],
                 until=MONTH[1], clock=CLOCK).run(tweets)
    valid: list[Message] = [*sink.accepted, *tweets.accepted[:5]]
    assert n_news > 10 and len(valid) == n_news + 5

    ensure_topics([topics.NEWS_ARTICLES, topics.SOCIAL_POSTS], lake_settings)
    bad_key, raw_key = f"bad-{run}", f"raw-{run}"
    bad = valid[0].model_dump(mode="json") | {"url": "not-a-url"}
    with Producer(lake_settings, client_id=f"test-altdata-{run}") as producer:
        out = ProducerSink(producer)
        for msg in valid:
            out.accept(msg)
        assert producer.send(topics.NEWS_ARTICLES, bad, bad_key) is False  # producer-side check -> dlq
        producer.send_raw(topics.NEWS_ARTICLES, raw_key, '{"source": "x", "title": "truncated')  # bypasses it
        producer.flush()

    landed = {t: land_topic(t, settings=lake_settings) for t in (topics.NEWS_ARTICLES, topics.SOCIAL_POSTS)}
    dlq = land_dead_letters(topics.NEWS_ARTICLES, settings=lake_settings)
    assert landed[topics.NEWS_ARTICLES].rows_landed >= n_news and landed[topics.SOCIAL_POSTS].rows_landed >= 5
    assert landed[topics.NEWS_ARTICLES].rows_quarantined >= 1 and dlq.rows_quarantined >= 1

    news_keys = set(_keys(spark, bronze_spec(topics.NEWS_ARTICLES).path(lake_settings)))
    post_keys = set(_keys(spark, bronze_spec(topics.SOCIAL_POSTS).path(lake_settings)))
    assert {m.key() for m in sink.accepted} <= news_keys and {m.key() for m in tweets.accepted[:5]} <= post_keys
    assert bad_key not in news_keys and raw_key not in news_keys

    q = spark.read.format("delta").load(dead_letter_spec(topics.NEWS_ARTICLES).path(lake_settings))
    raw_rows = q.where(f"key = '{raw_key}'").collect()
    assert len(raw_rows) == 1 and "payload" in raw_rows[0]["reason"] and "JSON" in raw_rows[0]["reason"]
    d = spark.read.format("delta").load(dead_letter_spec(topics.dlq(topics.NEWS_ARTICLES)).path(lake_settings))
    dlq_rows = d.where(f"key = '{bad_key}'").collect()
    assert len(dlq_rows) == 1 and "url" in dlq_rows[0]["reason"]
    assert json.loads(dlq_rows[0]["payload"])["url"] == "not-a-url"

    res = run_silver_documents(*MONTH, lake_settings)
    silver = spark.read.format("delta").load(SILVER_DOCUMENTS.path(lake_settings)).where(
        "published_time >= '2022-01-01' AND published_time < '2022-02-01'")
    keys = [r[0] for r in silver.select("doc_key").collect()]
    assert len(keys) == len(set(keys)) and res.rows > 0  # one row per document however often delivered
    ours = {m.key() for m in valid}
    # every replayed document is in silver or was collapsed as a duplicate / dropped as another language
    assert len(ours & set(keys)) + res.duplicates + res.other_language + res.earlier_duplicates >= len(ours)
    assert len(ours & set(keys)) >= 0.8 * len(ours)
    assert silver.where("kind = 'social'").count() >= 1

    again = {t: land_topic(t, settings=lake_settings) for t in (topics.NEWS_ARTICLES, topics.SOCIAL_POSTS)}
    assert all(r.rows_landed == 0 and r.rows_quarantined == 0 for r in again.values())
    assert land_dead_letters(topics.NEWS_ARTICLES, settings=lake_settings).rows_quarantined == 0
    res2 = run_silver_documents(*MONTH, lake_settings)
    assert (res2.inserted, res2.updated, res2.rows) == (0, 0, res.rows)
