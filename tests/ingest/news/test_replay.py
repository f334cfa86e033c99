"""Replays of the real text and chain files produce valid records with their original times."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from cryptolake.schemas import ChainBlockV1, ChainDailyStatV1, ChainTransferV1, NewsArticleV1, SocialPostV1
from ingest.chain.replay import EthereumEtlReplay, EtherscanChartReplay
from ingest.connectors.base import ListSink
from ingest.news.replay import CryptoNewsReplay
from ingest.social.replay import SocialReplay

CLOCK = lambda: datetime(2026, 1, 1, tzinfo=UTC)  # noqa: E731


def test_cryptonews_replay_keeps_publication_time_and_minute_availability(shared_data: Path) -> None:
    sink = ListSink()
    CryptoNewsReplay(shared_data / "news" / "cryptonews.csv.gz", clock=CLOCK).run(sink)
    # 60 real rows have an empty url: they are quarantined with the reason, never dropped silently
    assert len(sink.accepted) == 7464 and len(sink.quarantine) == 60
    assert all("url" in q.reason for q in sink.quarantine)
    first = sink.accepted[0]
    assert isinstance(first, NewsArticleV1)
    assert first.event_time == int(datetime(2022, 7, 5, 4, 24, tzinfo=UTC).timestamp() * 1000)
    assert first.available_time == first.event_time + 60_000 and first.provider_sentiment == 0.0


def test_social_replays_parse_every_row(shared_data: Path) -> None:
    d = shared_data / "social"
    counts = {}
    for path, fmt in ((d / "reddit" / "test_data.csv.gz", "reddit"),
                      (d / "twitter" / "ethereum_tweets.csv", "eth_tweets"),
                      (d / "twitter" / "bitcoin_tweets.csv.gz", "btc_tweets")):
        sink = ListSink()
        SocialReplay(path, fmt, clock=CLOCK).run(sink)
        counts[fmt] = (len(sink.accepted), len(sink.quarantine))
        assert all(isinstance(p, SocialPostV1) for p in sink.accepted)
    assert counts["eth_tweets"] == (1880, 0)
    assert counts["btc_tweets"] == (2137, 0)
    assert sum(counts["reddit"]) == 7352


def test_chain_replays(shared_data: Path) -> None:
    sink = ListSink()
    EthereumEtlReplay(shared_data / "chain" / "ethereum_etl" / "blocks_17173049_17173050", clock=CLOCK).run(sink)
    assert sink.quarantine == []
    assert sum(isinstance(m, ChainBlockV1) for m in sink.accepted) == 2
    assert sum(m.tx_count for m in sink.accepted if isinstance(m, ChainBlockV1)) == 298
    assert any(isinstance(m, ChainTransferV1) and m.token_address != "native" for m in sink.accepted)
    sink = ListSink()
    EtherscanChartReplay(shared_data / "chain" / "etherscan_daily", clock=CLOCK).run(sink)
    assert len(sink.accepted) == 5 * 3961 and all(isinstance(m, ChainDailyStatV1) for m in sink.accepted)
