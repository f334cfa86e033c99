"""`cryptolake altdata` commands: replay the real news/social/chain data sets, build silver and gold."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from cli.options import parse_time
from cryptolake.settings import DEFAULT_SHARED_DATA

if TYPE_CHECKING:
    from ingest.connectors.base import Connector

app = typer.Typer(help="alternative data (news, social, chain) commands", no_args_is_help=True)

DATASETS: dict[str, str] = {
    "news": "news/cryptonews.csv.gz (headlines) -> news.articles",
    "reddit": "social/reddit/{train,validation,test}_data.csv.gz -> social.posts",
    "eth-tweets": "social/twitter/ethereum_tweets.csv -> social.posts",
    "btc-tweets": "social/twitter/bitcoin_tweets.csv.gz -> social.posts",
    "ethereum-etl": "chain/ethereum_etl/blocks_* (blocks, txs, transfers) -> chain.blocks, chain.transfers",
    "raphtory": "chain/raphtory transactions (native transfers) -> chain.transfers",
    "etherscan": "chain/etherscan_daily chart exports -> chain.daily_stats",
}


def connectors_for(dataset: str, data: Path, since: datetime | None, until: datetime | None) -> list[Connector]:
    """The replay connectors of one named data set under the shared data root ``data``."""
    from ingest.chain.replay import EthereumEtlReplay, EtherscanChartReplay, RaphtoryTransactionsReplay
    from ingest.news.replay import CryptoNewsReplay
    from ingest.social.replay import SocialReplay

    window: dict[str, Any] = {"since": since, "until": until}
    if dataset == "news":
        return [CryptoNewsReplay(data / "news" / "cryptonews.csv.gz", **window)]
    if dataset == "reddit":
        return [SocialReplay(data / "social" / "reddit" / f"{part}_data.csv.gz", "reddit", **window)
                for part in ("train", "validation", "test")]
    if dataset == "eth-tweets":
        return [SocialReplay(data / "social" / "twitter" / "ethereum_tweets.csv", "eth_tweets", **window)]
    if dataset == "btc-tweets":
        return [SocialReplay(data / "social" / "twitter" / "bitcoin_tweets.csv.gz", "btc_tweets", **window)]
    if since or until:
        raise typer.BadParameter(f"--since/--until apply to text data sets, not {dataset!r}")
    if dataset == "ethereum-etl":
        return [EthereumEtlReplay(p) for p in sorted((data / "chain" / "ethereum_etl").glob("blocks_*"))]
    if dataset == "raphtory":
        return [RaphtoryTransactionsReplay(p)
                for p in sorted((data / "chain" / "raphtory").glob("transactions_*.csv.gz"))]
    if dataset == "etherscan":
        return [EtherscanChartReplay(data / "chain" / "etherscan_daily")]
    raise typer.BadParameter(f"unknown data set {dataset!r}; one of {', '.join(DATASETS)}")


def required_time(value: str, name: str) -> datetime:
    """A required ISO 8601 option as a UTC-aware datetime."""
    parsed = parse_time(value, name)
    if parsed is None:
        raise typer.BadParameter(f"--{name} is required")
    return parsed


class _ProgressSink:
    """Forwards to a sink and advances a rich progress task per record."""

    def __init__(self, inner: Any, progress: Any, task: Any) -> None:
        self.inner, self.progress, self.task = inner, progress, task

    def accept(self, msg: Any) -> None:
        self.inner.accept(msg)
        self.progress.advance(self.task)

    def reject(self, item: Any) -> None:
        self.inner.reject(item)
        self.progress.advance(self.task)


@app.command("replay")
def replay(
    datasets: list[str] = typer.Argument(..., help=f"Data sets to replay: {', '.join(DATASETS)}"),
    since: str = typer.Option(None, help="Only records published at/after this ISO 8601 UTC time (text only)"),
    until: str = typer.Option(None, help="Only records published before this ISO 8601 UTC time (text only)"),
    data: Path = typer.Option(DEFAULT_SHARED_DATA, envvar="CRYPTOLAKE_SHARED_DATA", help="Shared data root"),
) -> None:
    """Produce the real shared data sets to Kafka with their original timestamps (rejects -> dlq.<topic>)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from cryptolake.bus import Producer, ensure_topics
    from ingest.connectors.base import ProducerSink

    lo, hi = parse_time(since, "since"), parse_time(until, "until")
    conns = [c for d in datasets for c in connectors_for(d, data, lo, hi)]
    ensure_topics(sorted({c.topic for c in conns}))
    totals: dict[str, tuple[int, int]] = {}
    with Producer(client_id="cryptolake-altdata-replay") as producer, Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed:,} records"),
            TimeElapsedColumn()) as progress:
        for conn in conns:
            task = progress.add_task(f"{conn.name} -> {conn.topic}", total=None)
            stats = conn.run(_ProgressSink(ProducerSink(producer), progress, task))
            totals[f"{conn.name} -> {conn.topic}"] = (stats.accepted, stats.rejected)
    for name, (ok, bad) in totals.items():
        typer.echo(f"{name}: {ok:,} produced, {bad:,} dead-lettered")


@app.command("silver")
def silver(
    start: str = typer.Option(..., help="Interval start, ISO 8601 UTC (chain: a whole hour)"),
    end: str = typer.Option(..., help="Interval end (exclusive), ISO 8601 UTC"),
    jobs: list[str] = typer.Option(["documents", "chain"], help="Which of documents, chain"),
    land: bool = typer.Option(True, help="Land the news/social/chain topics into bronze first (exactly once)"),
) -> None:
    """Build silver.documents and/or silver.chain_activity for [start, end) (idempotent MERGE)."""
    from cryptolake import topics
    from spark_jobs.bronze.landing import land_topic
    from spark_jobs.session import stop_spark
    from spark_jobs.silver.chain import run_silver_chain
    from spark_jobs.silver.documents import run_silver_documents

    lo, hi = required_time(start, "start"), required_time(end, "end")
    unknown = set(jobs) - {"documents", "chain"}
    if unknown:
        raise typer.BadParameter(f"--jobs {sorted(unknown)}: expected documents and/or chain")
    wanted = {"documents": (topics.NEWS_ARTICLES, topics.SOCIAL_POSTS),
              "chain": (topics.CHAIN_BLOCKS, topics.CHAIN_TRANSFERS)}
    try:
        if land:
            for job in jobs:
                for topic in wanted[job]:
                    res = land_topic(topic)
                    typer.echo(f"landed {topic}: {res.rows_landed:,} rows, {res.rows_quarantined:,} quarantined")
        if "documents" in jobs:
            d = run_silver_documents(lo, hi)
            typer.echo(f"silver.documents: read {d.read:,}, rows {d.rows:,}, inserted {d.inserted:,}, "
                       f"updated {d.updated:,}, duplicates {d.duplicates:,}, other languages {d.other_language:,}")
        if "chain" in jobs:
            c = run_silver_chain(lo, hi)
            typer.echo(f"silver.chain_activity: {c.rows:,} hourly buckets, inserted {c.inserted:,}, "
                       f"updated {c.updated:,}")
    finally:
        stop_spark()


@app.command("gold")
def gold(
    start: str = typer.Option(..., help="First bar open time, ISO 8601 UTC"),
    end: str = typer.Option(..., help="Bars opening before this time, ISO 8601 UTC"),
    timeframes: list[str] = typer.Option([], help="Only these bar timeframes (default: all in silver.bars)"),
) -> None:
    """Compute gold.alt_features for the bars of [start, end) on DuckDB and replace that interval."""
    from spark_jobs.gold.alt_features import run_gold_alt_features

    lo, hi = required_time(start, "start"), required_time(end, "end")
    res = run_gold_alt_features(lo, hi, timeframes=tuple(timeframes) or None)
    typer.echo(f"gold.alt_features: {res.rows:,} rows for {', '.join(res.coins) or 'no coins'} "
               f"({res.bars:,} bars, {res.documents:,} documents, {res.chain_buckets:,} chain buckets) "
               f"in {res.seconds:.1f} s, table version {res.table_version}")
