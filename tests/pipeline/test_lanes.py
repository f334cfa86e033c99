"""The lanes land every topic a connector publishes; chain.daily_stats end to end on REAL Etherscan exports.

The contract (fast, no JVM): every topic with a registered schema is landed by some lane (the market
pipeline lands ``market.ohlcv``, the scorer writes ``signals``). The integration test replays the shared
Etherscan chart exports through the producer into Kafka, adds one malformed record, runs the lane's
landing and counts: every valid statistic once in bronze, the malformed one in quarantine with a reason
naming its field.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cryptolake import topics
from cryptolake.schemas import SCHEMAS
from pipeline import lanes

CLOCK = lambda: datetime(2026, 1, 1, tzinfo=UTC)  # noqa: E731


def test_every_registered_topic_is_landed_by_a_lane() -> None:
    landed_elsewhere = {topics.MARKET_OHLCV: "pipeline.market", topics.SIGNALS: "pipeline.scorer"}
    covered = set(lanes.EXCHANGE_TOPICS) | set(lanes.ALT_TOPICS) | set(landed_elsewhere)
    assert set(SCHEMAS) - covered == set()
    assert len(lanes.ALT_TOPICS) == len(set(lanes.ALT_TOPICS))
    assert not set(lanes.ALT_TOPICS) & set(lanes.EXCHANGE_TOPICS)


@pytest.mark.kafka
@pytest.mark.spark
def test_chain_daily_stats_land_once_and_a_malformed_one_is_quarantined(kafka_bootstrap: str, spark: Any,
                                                                        lake_settings: Any, shared_data: Path) -> None:
    from cryptolake.bus import Producer, ensure_topics
    from cryptolake.tables import bronze_spec, dead_letter_spec
    from ingest.chain.replay import EtherscanChartReplay
    from ingest.connectors.base import ListSink, ProducerSink

    run = uuid.uuid4().hex[:8]
    sink = ListSink()
    EtherscanChartReplay(shared_data / "chain" / "etherscan_daily", chain=f"ethereum-{run}", clock=CLOCK).run(sink)
    assert len(sink.accepted) > 1000
    valid = sink.accepted[-400:]  # the newest 400 (the landing's cost is not what this test measures)
    assert len({m.key() for m in valid}) == len(valid)
    bad_key = f"ethereum-{run}:tx_count:bad"
    bad = valid[0].model_dump(mode="json") | {"value": "many"}
    ensure_topics([topics.CHAIN_DAILY_STATS], lake_settings)
    with Producer(lake_settings, client_id=f"test-lanes-{run}") as producer:
        out = ProducerSink(producer)
        for msg in valid:
            out.accept(msg)
        producer.send_raw(topics.CHAIN_DAILY_STATS, bad_key, json.dumps(bad))  # past the producer's check
        producer.flush()

    result = lanes.land((topics.CHAIN_DAILY_STATS,), lake_settings)[topics.CHAIN_DAILY_STATS]
    assert result["landed"]["rows_landed"] >= len(valid) and result["landed"]["rows_quarantined"] >= 1

    bronze = spark.read.format("delta").load(bronze_spec(topics.CHAIN_DAILY_STATS).path(lake_settings))
    ours = bronze.where(f"key LIKE 'ethereum-{run}:%'").groupBy("key").count().collect()
    assert {r["key"] for r in ours} == {m.key() for m in valid} and {r["count"] for r in ours} == {1}
    q = spark.read.format("delta").load(dead_letter_spec(topics.CHAIN_DAILY_STATS).path(lake_settings))
    [row] = q.where(f"key = '{bad_key}'").collect()
    assert row["reason"].startswith("invalid value="), row["reason"]
    again = lanes.land((topics.CHAIN_DAILY_STATS,), lake_settings)[topics.CHAIN_DAILY_STATS]
    assert again["landed"]["rows_landed"] == 0  # exactly once: the checkpoint holds
