"""silver.documents from bronze-shaped real headlines and tweets (January 2022)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cryptolake import topics
from cryptolake.schemas import Message, NewsArticleV1, SocialPostV1
from cryptolake.settings import Settings
from cryptolake.tables import SILVER_DOCUMENTS
from ingest.connectors.base import ListSink
from ingest.news.replay import CryptoNewsReplay
from ingest.social.replay import SocialReplay
from spark_jobs.silver import documents_nlp as nlp
from spark_jobs.silver.documents import run_silver_documents, score_frame, scoring_text
from tests.spark_jobs.silver.alt_bronze import append_bronze, bronze_rows

JAN, FEB, FEB2 = (datetime(2022, 1, 1, tzinfo=UTC), datetime(2022, 2, 1, tzinfo=UTC),
                  datetime(2022, 2, 2, tzinfo=UTC))
CLOCK = lambda: datetime(2026, 1, 1, tzinfo=UTC)  # noqa: E731


def _real(shared_data: Path) -> tuple[list[NewsArticleV1], list[SocialPostV1]]:
    sink = ListSink()
    CryptoNewsReplay(shared_data / "news" / "cryptonews.csv.gz", since=JAN, until=FEB, clock=CLOCK).run(sink)
    SocialReplay(shared_data / "social" / "twitter" / "ethereum_tweets.csv", "eth_tweets", since=JAN, until=FEB,
                 clock=CLOCK).run(sink)
    news = [m for m in sink.accepted if isinstance(m, NewsArticleV1)]
    posts = [m for m in sink.accepted if isinstance(m, SocialPostV1)]
    return news, posts


def _expected(news: list[dict[str, Any]], posts: list[dict[str, Any]]) -> pd.DataFrame:
    """Independent pandas version of the dedup rules: first landed copy per key, English only,
    same URL then same normalised text, earliest available copy (ties: key) survives."""
    rows = [{"doc_key": f"{p['source']}:{p['doc_id']}", "url": p["url"], "available_time": p["available_time"],
             "text": nlp.clean_text(scoring_text("news", p["title"], p["body"]))} for p in news]
    rows += [{"doc_key": f"{p['platform']}:{p['post_id']}", "url": p.get("url"),
              "available_time": p["available_time"], "text": nlp.clean_text(p["text"])} for p in posts]
    df = pd.DataFrame(rows).drop_duplicates("doc_key", keep="first")
    df = df[[nlp.detect_language(t) == "en" for t in df.text]]
    df = df.sort_values(["available_time", "doc_key"])
    df = df.assign(u=df.url.fillna(df.doc_key)).drop_duplicates("u", keep="first")
    df = df.assign(h=[nlp.dedup_hash(t) for t in df.text]).drop_duplicates("h", keep="first")
    return df.set_index("doc_key")


def test_score_frame_scores_news_and_posts_with_the_pure_functions() -> None:
    pdf = pd.DataFrame([
        {"doc_key": "n:1", "kind": "news", "source": "n", "doc_id": "1", "url": "https://x.y/1", "author": "a",
         "channel": None, "title": "<b>Bitcoin</b> surges", "body": "ETH rallies", "language_hint": None,
         "published_time": pd.Timestamp("2022-01-01"), "available_time": pd.Timestamp("2022-01-01 00:01"),
         "ingest_time": pd.Timestamp("2026-01-01"), "provider_sentiment": 0.1, "followers": None, "score": None,
         "replies": None, "reposts": None, "views": None, "author_posts": 0},
        {"doc_key": "x:2", "kind": "social", "source": "x", "doc_id": "2", "url": None, "author": "b",
         "channel": "eth", "title": None, "body": "got rekt on the METHOD", "language_hint": "en",
         "published_time": pd.Timestamp("2022-01-01"), "available_time": pd.Timestamp("2022-01-01"),
         "ingest_time": pd.Timestamp("2026-01-01"), "provider_sentiment": None, "followers": 100, "score": 3,
         "replies": 1, "reposts": 0, "views": None, "author_posts": 4},
    ])
    out = score_frame(pdf).set_index("doc_key")
    assert out.loc["n:1", "text"] == "Bitcoin surges. ETH rallies"
    assert out.loc["n:1", "coins"] == ["BTC", "ETH"] and out.loc["x:2", "coins"] == []
    assert out.loc["n:1", "sentiment"] == nlp.sentiment("Bitcoin surges. ETH rallies") > 0
    assert out["sentiment"].tolist()[1] < 0 and out.loc["x:2", "language"] == "en"
    assert out["engagement"].isna().tolist() == [True, False]
    assert out.loc["x:2", "engagement"] == nlp.engagement(3, 1, 0, None)
    assert out.loc["x:2", "author_influence"] == nlp.author_influence(100, 4)


@pytest.mark.spark
def test_silver_documents_dedups_filters_scores_and_reruns_idempotently(
        spark: Any, lake_settings: Settings, shared_data: Path) -> None:
    news, posts = _real(shared_data)
    assert len(news) > 500 and len(posts) > 30
    news_p = sorted((m.model_dump(mode="json") for m in news), key=lambda p: (p["event_time"], p["doc_id"]))
    post_p = [m.model_dump(mode="json") for m in posts]
    first = news_p[0]
    # Altered copies of REAL records (to exercise the rules), each labelled:
    shouted = dict(first, doc_id="altered-copy-1", url="https://example.org/altered-copy-1",
                   title=first["title"].upper() + "!!!", event_time=first["event_time"] + 3_600_000,
                   available_time=first["available_time"] + 3_600_000)  # near-duplicate text, new URL
    same_url = dict(news_p[1], doc_id="altered-copy-2", title="A different headline about markets",
                    event_time=news_p[1]["event_time"] + 60_000,
                    available_time=news_p[1]["available_time"] + 60_000)  # same URL, later
    spanish = dict(post_p[0], post_id="synthetic-es-1",  # synthetic: a Spanish sentence, must be filtered
                   text="El precio de bitcoin subió mucho durante la noche según los analistas del mercado")
    last = news_p[-1]
    late_copy = dict(last, doc_id="altered-copy-3", url="https://example.org/altered-copy-3",
                     event_time=int(FEB.timestamp() * 1000) + 1_800_000,
                     available_time=int(FEB.timestamp() * 1000) + 1_860_000)  # Jan 31 text again on Feb 1
    news_all = [*news_p, shouted, same_url]
    posts_all = [*post_p, spanish]
    redelivered = news_p[:3]  # the same messages landed again at new offsets
    append_bronze(spark, topics.NEWS_ARTICLES, bronze_rows(topics.NEWS_ARTICLES, [
        *news_all, *redelivered, late_copy]), lake_settings)
    append_bronze(spark, topics.SOCIAL_POSTS, bronze_rows(topics.SOCIAL_POSTS, posts_all), lake_settings)

    res = run_silver_documents(JAN, FEB, lake_settings)

    expected = _expected(news_all, posts_all)
    assert res.read == len(news_all) + len(redelivered) + len(posts_all)
    assert res.redelivered == 3
    assert res.other_language == 1
    assert res.rows == res.inserted == len(expected)
    silver = spark.read.format("delta").load(SILVER_DOCUMENTS.path(lake_settings)).toPandas().set_index("doc_key")
    assert sorted(silver.index) == sorted(expected.index)
    key = f"{first['source']}:{first['doc_id']}"
    assert f"{first['source']}:altered-copy-1" not in silver.index
    assert f"{first['source']}:altered-copy-2" not in silver.index
    assert silver.loc[key, "duplicates"] >= 1
    assert silver.loc[f"{news_p[1]['source']}:{news_p[1]['doc_id']}", "duplicates"] >= 1
    text = nlp.clean_text(scoring_text("news", first["title"], first["body"]))
    assert silver.loc[key, "sentiment"] == nlp.sentiment(text)
    assert list(silver.loc[key, "coins"]) == nlp.coins_mentioned(text)
    assert silver.sentiment.between(-1, 1).all() and (silver.available_time >= silver.published_time).all()
    assert Counter(silver.kind) == Counter({"news": int((expected.index.str.startswith("replay:")).sum()),
                                            "social": int((~expected.index.str.startswith("replay:")).sum())})
    assert silver.topic.nunique() > 3 and len(res.topic_terms) == 8

    again = run_silver_documents(JAN, FEB, lake_settings)
    assert (again.inserted, again.updated, again.rows) == (0, 0, res.rows)
    assert spark.read.format("delta").load(SILVER_DOCUMENTS.path(lake_settings)).count() == res.rows

    feb = run_silver_documents(FEB, FEB2, lake_settings)
    assert feb.earlier_duplicates == 1  # the late copy of a January headline
    feb_keys = {r.doc_key for r in spark.read.format("delta").load(SILVER_DOCUMENTS.path(lake_settings))
                .where("published_time >= '2022-02-01'").select("doc_key").collect()}
    assert f"{last['source']}:altered-copy-3" not in feb_keys and len(feb_keys) == feb.rows
    assert isinstance(news[0], Message)
