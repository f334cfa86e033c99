"""Text scoring throughput: the silver.documents scorer in Spark (pandas UDF via mapInPandas) vs the
same scorer (``spark_jobs.silver.documents.score_frame``: cleaning, seeded langdetect, VADER +
crypto lexicon, coins, dedup hash, engagement) called in plain Python, on the same real headlines
of ``news/cryptonews.csv.gz``, in the same run. Spark start-up is excluded and printed apart; the
Spark run is timed after one warm-up pass over a small slice.

    .venv/bin/python bench/bench_text.py [--docs 7524] [--repeat 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spark_jobs.silver.documents import RAW_COLUMNS, SCORED_COLUMNS, score_frame

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def raw_frame(data: Path, n: int) -> pd.DataFrame:
    """Real headlines as the unified raw rows the UDF receives."""
    news = pd.read_csv(data / "news" / "cryptonews.csv.gz", sep=";", dtype=str, keep_default_na=False)
    reps = -(-n // len(news))
    news = pd.concat([news] * reps, ignore_index=True).head(n)
    t = pd.to_datetime(news["date"], format="%d-%m-%Y %H:%M")
    return pd.DataFrame({
        "doc_key": [f"replay:cryptonews:{i}" for i in range(len(news))], "kind": "news",
        "source": "replay:cryptonews", "doc_id": news.index.astype(str), "url": news["url"],
        "author": news["source"], "channel": None, "title": news["title"], "body": news["text"],
        "language_hint": None, "published_time": t, "available_time": t + pd.Timedelta(minutes=1),
        "ingest_time": t + pd.Timedelta(minutes=2), "provider_sentiment": 0.0, "followers": None, "score": None,
        "replies": None, "reposts": None, "views": None, "author_posts": 0,
    })[[c for c, _ in RAW_COLUMNS]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA, help="shared data folder")
    ap.add_argument("--docs", type=int, default=7524, help="documents to score (the file has 7,524 rows)")
    args = ap.parse_args()
    pdf = raw_frame(args.data, args.docs)
    n = len(pdf)

    score_frame(pdf.head(50))  # load VADER and langdetect profiles once, as the UDF workers will
    t0 = time.perf_counter()
    plain = score_frame(pdf)
    t_plain = time.perf_counter() - t0
    print(f"plain python: {n} docs in {t_plain:.2f}s = {n / t_plain:.0f} docs/s", flush=True)

    from spark_jobs.session import get_spark, stop_spark

    t0 = time.perf_counter()
    spark = get_spark()
    print(f"spark start-up (excluded): {time.perf_counter() - t0:.1f}s", flush=True)
    try:
        schema = ", ".join(f"{c} {t}" for c, t in RAW_COLUMNS)
        df = spark.createDataFrame(pdf, schema).repartition(spark.sparkContext.defaultParallelism).cache()
        df.count()
        ddl = ", ".join(f"{c} {t}" for c, t in SCORED_COLUMNS)

        def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            for b in batches:
                yield score_frame(b)

        df.limit(100).mapInPandas(score, ddl).count()  # warm-up: Python workers, imports
        t0 = time.perf_counter()
        out = df.mapInPandas(score, ddl).select("doc_key", "sentiment").toPandas()
        t_spark = time.perf_counter() - t0
        print(f"spark pandas UDF ({spark.sparkContext.defaultParallelism} cores): {n} docs in {t_spark:.2f}s "
              f"= {n / t_spark:.0f} docs/s", flush=True)
        same = out.set_index("doc_key").sentiment.sort_index().equals(
            plain.set_index("doc_key").sentiment.sort_index())
        print(f"same scores: {same}")
        print(f"ratio spark/plain throughput: {t_plain / t_spark:.2f}x")
    finally:
        stop_spark()


if __name__ == "__main__":
    main()
