"""bronze.news_articles + bronze.social_posts -> silver.documents (issue #5).

One run covers the documents *published* in ``[start, end)``:

1. parse the validated payloads; a message landed twice (same ``doc_key``) keeps its first landed copy;
2. score in a pandas UDF (``mapInPandas``) with the pure functions of
   :mod:`spark_jobs.silver.documents_nlp`: clean text, dedup hash, seeded language, VADER + crypto
   lexicon sentiment, coins, engagement, author influence, and the dominant TF-IDF + NMF topic
   (the topic model is fitted on the driver on a deterministic sample of the interval's texts,
   then shipped to the executors with the UDF);
3. keep the configured languages (the rest are counted and logged, not written);
4. dedup: same URL first, then near-duplicate text (same normalised-text hash); the earliest
   available copy (ties: ``doc_key``) survives and ``duplicates`` counts what collapsed into it.
   Copies of a document already in silver from the previous ``dedup_lookback_days`` are dropped too;
5. validate and MERGE on ``doc_key`` scoped to the interval: a re-run inserts and updates nothing.

Topic ids are per run interval (a model is fitted per interval); their terms are logged.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from cryptolake import topics
from cryptolake.errors import DataValidationError, SchemaMismatchError
from cryptolake.logs import get_logger
from cryptolake.settings import Settings, get_settings
from cryptolake.tables import SILVER_DOCUMENTS, bronze_spec
from spark_jobs.delta_io import check_interval, interval_filter, merge_rows, read_interval, sql_ts, table_exists
from spark_jobs.silver import documents_nlp as nlp

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = get_logger(__name__)

TOPICS = 8
TOPIC_FIT_DOCS = 5000

NEWS_PAYLOAD_DDL = (
    "source STRING, doc_id STRING, url STRING, title STRING, body STRING, author STRING, language STRING, "
    "provider_sentiment DOUBLE"
)
SOCIAL_PAYLOAD_DDL = (
    "platform STRING, post_id STRING, kind STRING, channel STRING, author STRING, author_followers BIGINT, "
    "text STRING, url STRING, score BIGINT, replies BIGINT, reposts BIGINT, views BIGINT, language STRING, "
    "provider_sentiment DOUBLE"
)
# The unified, not-yet-scored row the UDF receives.
RAW_COLUMNS: tuple[tuple[str, str], ...] = (
    ("doc_key", "STRING"), ("kind", "STRING"), ("source", "STRING"), ("doc_id", "STRING"), ("url", "STRING"),
    ("author", "STRING"), ("channel", "STRING"), ("title", "STRING"), ("body", "STRING"),
    ("language_hint", "STRING"), ("published_time", "TIMESTAMP"), ("available_time", "TIMESTAMP"),
    ("ingest_time", "TIMESTAMP"), ("provider_sentiment", "DOUBLE"), ("followers", "BIGINT"),
    ("score", "BIGINT"), ("replies", "BIGINT"), ("reposts", "BIGINT"), ("views", "BIGINT"),
    ("author_posts", "BIGINT"),
)
SCORED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("doc_key", "STRING"), ("kind", "STRING"), ("source", "STRING"), ("doc_id", "STRING"), ("url", "STRING"),
    ("author", "STRING"), ("channel", "STRING"), ("title", "STRING"), ("text", "STRING"),
    ("language", "STRING"), ("published_time", "TIMESTAMP"), ("available_time", "TIMESTAMP"),
    ("ingest_time", "TIMESTAMP"), ("sentiment", "DOUBLE"), ("provider_sentiment", "DOUBLE"),
    ("coins", "ARRAY<STRING>"), ("topic", "INT"), ("engagement", "DOUBLE"), ("author_influence", "DOUBLE"),
    ("dedup_hash", "STRING"),
)


@dataclass
class DocumentsResult:
    """What one silver.documents run did."""

    start: str
    end: str
    read: int = 0
    redelivered: int = 0
    other_language: int = 0
    duplicates: int = 0
    earlier_duplicates: int = 0
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    table_version: int = -1
    topic_terms: list[list[str]] = field(default_factory=list)


# --- pure (pandas) --------------------------------------------------------------------------
def scoring_text(kind: str, title: str | None, body: str | None) -> str:
    """The text that is scored: ``title. body`` for news, the post text for social."""
    if kind == "news":
        return ". ".join(p for p in ((title or "").strip(), (body or "").strip()) if p)
    return body or ""


def score_frame(pdf: pd.DataFrame, topic_model: tuple[Any, Any] | None = None) -> pd.DataFrame:
    """Score unified raw rows (:data:`RAW_COLUMNS`) into :data:`SCORED_COLUMNS` (the UDF body)."""
    texts = [nlp.clean_text(scoring_text(k, t, b)) for k, t, b in zip(pdf["kind"], pdf["title"], pdf["body"],
                                                                       strict=True)]
    langs = [hint if isinstance(hint, str) and hint else nlp.detect_language(t)
             for hint, t in zip(pdf["language_hint"], texts, strict=True)]
    topic_ids = nlp.assign_topics(topic_model[0], topic_model[1], texts) if topic_model else [-1] * len(texts)

    def opt(v: Any) -> int | None:
        return None if v is None or pd.isna(v) else int(v)

    engagement = [
        None if k == "news" else nlp.engagement(opt(s), opt(r), opt(p), opt(v))
        for k, s, r, p, v in zip(pdf["kind"], pdf["score"], pdf["replies"], pdf["reposts"], pdf["views"], strict=True)
    ]
    influence = [
        None if k == "news" else nlp.author_influence(opt(f), int(n or 0))
        for k, f, n in zip(pdf["kind"], pdf["followers"], pdf["author_posts"], strict=True)
    ]
    out = pd.DataFrame({
        "doc_key": pdf["doc_key"], "kind": pdf["kind"], "source": pdf["source"], "doc_id": pdf["doc_id"],
        "url": pdf["url"], "author": pdf["author"], "channel": pdf["channel"],
        "title": [nlp.clean_text(t) if isinstance(t, str) else None for t in pdf["title"]],
        "text": texts, "language": langs, "published_time": pdf["published_time"],
        "available_time": pdf["available_time"], "ingest_time": pdf["ingest_time"],
        "sentiment": nlp.sentiments(texts), "provider_sentiment": pdf["provider_sentiment"],
        "coins": [nlp.coins_mentioned(t) for t in texts], "topic": topic_ids, "engagement": engagement,
        "author_influence": influence, "dedup_hash": [nlp.dedup_hash(t) if nlp.normalise(t) else None
                                                      for t in texts],
    })
    out["topic"] = out["topic"].astype("int32")
    return out


# --- Spark ------------------------------------------------------------------------------------
def _read_bronze(spark: SparkSession, start: datetime, end: datetime, settings: Settings) -> DataFrame | None:
    """Unified raw rows of both bronze tables for documents published in [start, end)."""
    from pyspark.sql import functions as F

    parts: list[DataFrame] = []
    n = read_interval(spark, bronze_spec(topics.NEWS_ARTICLES), start, end, settings)
    if n is not None:
        p = F.from_json("payload", NEWS_PAYLOAD_DDL)
        n = n.select("*", p.alias("p"))
        parts.append(n.select(
            F.concat_ws(":", "p.source", "p.doc_id").alias("doc_key"), F.lit("news").alias("kind"),
            F.col("p.source").alias("source"), F.col("p.doc_id").alias("doc_id"), F.col("p.url").alias("url"),
            F.col("p.author").alias("author"), F.lit(None).cast("string").alias("channel"),
            F.col("p.title").alias("title"), F.col("p.body").alias("body"),
            F.col("p.language").alias("language_hint"), F.col("event_time").alias("published_time"),
            "available_time", "ingest_time", F.col("p.provider_sentiment").alias("provider_sentiment"),
            *[F.lit(None).cast("bigint").alias(c) for c in ("followers", "score", "replies", "reposts", "views")],
            "landed_time", "partition", "offset"))
    s = read_interval(spark, bronze_spec(topics.SOCIAL_POSTS), start, end, settings)
    if s is not None:
        p = F.from_json("payload", SOCIAL_PAYLOAD_DDL)
        s = s.select("*", p.alias("p"))
        parts.append(s.select(
            F.concat_ws(":", "p.platform", "p.post_id").alias("doc_key"), F.lit("social").alias("kind"),
            F.col("p.platform").alias("source"), F.col("p.post_id").alias("doc_id"), F.col("p.url").alias("url"),
            F.col("p.author").alias("author"), F.col("p.channel").alias("channel"),
            F.lit(None).cast("string").alias("title"), F.col("p.text").alias("body"),
            F.col("p.language").alias("language_hint"), F.col("event_time").alias("published_time"),
            "available_time", "ingest_time", F.col("p.provider_sentiment").alias("provider_sentiment"),
            F.col("p.author_followers").alias("followers"), F.col("p.score").alias("score"),
            F.col("p.replies").alias("replies"), F.col("p.reposts").alias("reposts"), F.col("p.views").alias("views"),
            "landed_time", "partition", "offset"))
    if not parts:
        return None
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    return out


def _first_by(df: DataFrame, keys: list[str], order: list[str], count_as: str) -> DataFrame:
    """Keep the first row per ``keys`` under ``order``; ``count_as`` = how many rows the group had."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    w = Window.partitionBy(*keys).orderBy(*order)
    g = Window.partitionBy(*keys)
    return (df.withColumn("_rn", F.row_number().over(w)).withColumn(count_as, F.count(F.lit(1)).over(g))
              .where("_rn = 1").drop("_rn"))


def build_documents(spark: SparkSession, raw: DataFrame, *, languages: tuple[str, ...] = ("en",),
                    seed: int = 7, result: DocumentsResult | None = None) -> DataFrame:
    """Unified bronze rows -> silver.documents rows (deduplicated, language-filtered, scored)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    result = result or DocumentsResult("", "")
    once = _first_by(raw, ["doc_key"], ["landed_time", "partition", "offset"], "_copies").drop("_copies")
    per_author = Window.partitionBy("kind", "source", "author")
    once = once.withColumn("author_posts", F.when(F.col("author").isNotNull(), F.count(F.lit(1)).over(per_author))
                           .otherwise(F.lit(0)).cast("bigint")).select(*(c for c, _ in RAW_COLUMNS))
    n_once = once.count()
    result.redelivered = result.read - n_once
    # Topic model: fitted on a deterministic sample (lowest doc_key hashes), on the driver.
    sample = (once.select("kind", "title", "body", F.xxhash64("doc_key").alias("h"), "doc_key")
              .orderBy("h", "doc_key").limit(TOPIC_FIT_DOCS).collect())
    texts = [nlp.clean_text(scoring_text(r["kind"], r["title"], r["body"])) for r in sample]
    model: tuple[Any, Any] | None = None
    if len(texts) >= 3:
        vec, nmf, _ = nlp.fit_topic_model(texts, TOPICS, seed)
        model = (vec, nmf)
        result.topic_terms = nlp.topic_terms(vec, nmf)
        log.info("silver.documents.topics", extra={"terms": result.topic_terms})
    ddl = ", ".join(f"{c} {t}" for c, t in SCORED_COLUMNS)

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for pdf in batches:
            yield score_frame(pdf, model)

    scored = once.mapInPandas(score, ddl).persist()  # type: ignore[arg-type]
    kept = scored.where(F.col("language").isin(*languages))
    result.other_language = n_once - kept.count()
    order = ["available_time", "doc_key"]
    by_url = _first_by(kept.withColumn("_u", F.coalesce("url", "doc_key")), ["_u"], order, "_n_url")
    by_url = by_url.withColumn("_dup_url", F.col("_n_url") - 1).drop("_u", "_n_url")
    h = F.coalesce("dedup_hash", "doc_key")
    w = Window.partitionBy("_h")
    dups = F.sum("_dup_url").over(w) + F.count(F.lit(1)).over(w) - 1
    by_text = by_url.withColumn("_h", h).withColumn("_dups", dups)
    by_text = _first_by(by_text, ["_h"], order, "_n").drop("_h", "_n", "_dup_url")
    return by_text.withColumn("duplicates", F.col("_dups").cast("int")).drop("_dups").withColumn(
        "pub_month", F.trunc("published_time", "month").cast("date"))


def _drop_earlier_copies(spark: SparkSession, docs: DataFrame, start: datetime, settings: Settings,
                         lookback: timedelta) -> DataFrame:
    """Drop documents whose URL or text hash already exists in silver from the ``lookback`` before ``start``."""
    from pyspark.sql import functions as F

    if not table_exists(spark, SILVER_DOCUMENTS, settings) or lookback <= timedelta(0):
        return docs
    lo = start - lookback
    prior = (spark.read.format("delta").load(SILVER_DOCUMENTS.path(settings))
             .where(interval_filter("pub_month", "published_time", lo, start, date_start=lo.replace(day=1)))
             .select("url", "dedup_hash"))
    urls = prior.where(F.col("url").isNotNull()).select("url").distinct()
    hashes = prior.where(F.col("dedup_hash").isNotNull()).select("dedup_hash").distinct()
    return docs.join(urls, "url", "left_anti").join(hashes, "dedup_hash", "left_anti")


def validate_documents(docs: DataFrame, start: datetime, end: datetime) -> dict[str, Any]:
    """Check rows before writing; raises naming the bad field and value."""
    from pyspark.sql import functions as F

    if tuple(docs.columns) != SILVER_DOCUMENTS.column_names:
        raise SchemaMismatchError(f"silver.documents rows have {docs.columns}, spec {SILVER_DOCUMENTS.column_names}")
    agg = docs.agg(
        F.count(F.lit(1)).alias("rows"), F.count_distinct("doc_key").alias("keys"),
        F.sum(F.col("doc_key").isNull().cast("int")).alias("null_key"),
        F.min("sentiment").alias("smin"), F.max("sentiment").alias("smax"),
        F.sum(((F.col("published_time") < F.expr(sql_ts(start)))
               | (F.col("published_time") >= F.expr(sql_ts(end)))).cast("int")).alias("outside"),
        F.sum((F.col("available_time") < F.col("published_time")).cast("int")).alias("early"),
    ).collect()[0]
    if agg["null_key"]:
        raise DataValidationError("doc_key", None, f"{agg['null_key']} documents have no key")
    if agg["rows"] != agg["keys"]:
        raise DataValidationError("doc_key", agg["rows"] - agg["keys"], "duplicate keys after dedup")
    if agg["rows"] and not (agg["smin"] >= -1.0 and agg["smax"] <= 1.0):
        raise DataValidationError("sentiment", (agg["smin"], agg["smax"]), "scores must lie in [-1, 1]")
    if agg["outside"]:
        raise DataValidationError("published_time", agg["outside"], f"documents outside [{start}, {end})")
    if agg["early"]:
        raise DataValidationError("available_time", agg["early"], "documents available before publication")
    return agg.asDict()


def run_silver_documents(start: datetime, end: datetime, settings: Settings | None = None, *,
                         languages: tuple[str, ...] | None = None) -> DocumentsResult:
    """Build silver.documents for documents published in ``[start, end)`` and MERGE them (idempotent).

    ``languages`` (default ``settings.altdata.languages``) are kept; copies of documents from the
    ``settings.altdata.dedup_lookback_days`` before ``start`` are dropped.
    """
    from spark_jobs.session import get_spark

    settings = settings or get_settings()
    alt = settings.altdata
    languages = languages or alt.languages
    check_interval(start, end)
    spark = get_spark(settings)
    result = DocumentsResult(start=start.isoformat(), end=end.isoformat())
    raw = _read_bronze(spark, start, end, settings)
    if raw is None:
        log.warning("silver.documents.no_bronze", extra={"start": result.start, "end": result.end})
        return result
    raw = raw.persist()
    try:
        result.read = raw.count()
        if result.read == 0:
            log.info("silver.documents.empty", extra={"start": result.start, "end": result.end})
            return result
        built = build_documents(spark, raw, languages=languages, seed=settings.seed, result=result).persist()
        try:
            n_built = built.count()
            result.duplicates = int(built.agg({"duplicates": "sum"}).collect()[0][0] or 0)
            docs = _drop_earlier_copies(spark, built, start, settings, alt.dedup_lookback)
            docs = docs.select(*SILVER_DOCUMENTS.column_names)
            docs = docs.persist()
            summary = validate_documents(docs, start, end)
            result.rows = int(summary["rows"])
            result.earlier_duplicates = n_built - result.rows
            target = interval_filter("t.pub_month", "t.published_time", start, end, date_start=start.replace(day=1))
            metrics = merge_rows(spark, docs, SILVER_DOCUMENTS, target_filter=target, settings=settings)
            docs.unpersist()
        finally:
            built.unpersist()
    finally:
        raw.unpersist()
    result.inserted, result.updated, result.table_version = metrics["inserted"], metrics["updated"], metrics["version"]
    log.info("silver.documents.done", extra={k: v for k, v in vars(result).items() if k != "topic_terms"})
    return result
