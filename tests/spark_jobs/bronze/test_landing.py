"""Acceptance of the exactly-once landing job (issue #2): Kafka -> Delta bronze, Spark and DuckDB agree.

The candles here are SYNTHETIC (generated from a seeded formula), labelled exchange "synthetic".
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from cryptolake.bus import Producer, ensure_topics
from cryptolake.schemas import OhlcvV1
from cryptolake.settings import Settings
from cryptolake.tables import bronze_spec, dead_letter_spec
from cryptolake.types import TIMEFRAME_MS

pytestmark = [pytest.mark.spark, pytest.mark.kafka]

SYMBOLS = ("BTC/USD", "EOS/USD", "SOL/USD")  # their keys hash to partitions 1, 0 and 2
T0 = 1_700_000_000_000 - (1_700_000_000_000 % 60_000)  # 2023-11-14, minute aligned


def synthetic_candle(i: int, symbol: str) -> OhlcvV1:
    """A synthetic 1m candle (not market data): deterministic prices from the index."""
    price = 100.0 + (i % 97) * 0.5
    event = T0 + i * TIMEFRAME_MS["1m"]
    return OhlcvV1(
        schema_version=1, event_time=event, available_time=event + TIMEFRAME_MS["1m"],
        ingest_time=event + TIMEFRAME_MS["1m"] + 500, exchange="synthetic", symbol=symbol, timeframe="1m",
        open=price, high=price + 1.0, low=price - 1.0, close=price + 0.25, volume=float(i % 13),
    )


def produce(settings: Settings, topic: str, start: int, stop: int) -> float:
    """Send candles [start, stop) spread over 3 symbols (3 partitions); returns the sum of volumes."""
    total = 0.0
    with Producer(settings) as producer:
        for i in range(start, stop):
            candle = synthetic_candle(i // 3, SYMBOLS[i % 3])
            producer.send_raw(topic, candle.key(), candle.model_dump_json())
            total += candle.volume
    return total


def test_land_topic_exactly_once_and_spark_duckdb_agree(spark, kafka_bootstrap, lake_settings):
    from cryptolake import duck
    from spark_jobs.bronze.landing import land_topic

    # The contract topic name is market.ohlcv; a unique suffix keeps test runs apart, and the
    # OhlcvV1 schema is checked by registering the same model under the unique name.
    topic = f"test.ohlcv_{uuid.uuid4().hex[:8]}"
    from cryptolake.schemas import SCHEMAS

    SCHEMAS[topic] = OhlcvV1
    try:
        ensure_topics([topic], lake_settings, partitions=3)
        vol1 = produce(lake_settings, topic, 0, 10_000)

        first = land_topic(topic, settings=lake_settings)
        assert (first.rows_landed, first.rows_quarantined) == (10_000, 0)

        again = land_topic(topic, settings=lake_settings)
        assert (again.rows_landed, again.rows_quarantined) == (0, 0)

        vol2 = produce(lake_settings, topic, 10_000, 15_000)
        with Producer(lake_settings) as producer:
            producer.send_raw(topic, "synthetic:BAD", "this is {not json")
            bad_candle = json.loads(synthetic_candle(1, "BTC/USD").model_dump_json())
            bad_candle["high"] = "NaN-ish"
            producer.send_raw(topic, "synthetic:BTC/USD", json.dumps(bad_candle))
        third = land_topic(topic, settings=lake_settings)
        assert (third.rows_landed, third.rows_quarantined) == (5_000, 2)

        bronze_path = bronze_spec(topic).path(lake_settings)
        df = spark.read.format("delta").load(bronze_path)
        row = df.selectExpr("count(*) n", "sum(get_json_object(payload, '$.volume') * 1.0) v",
                            "count(distinct topic, partition, offset) k", "count(distinct partition) p",
                            "min(event_time) t0", "sum(cast(available_time < event_time as int)) bad_t").first()
        assert row["n"] == 15_000 and row["k"] == 15_000 and row["p"] == 3
        assert row["v"] == pytest.approx(vol1 + vol2)
        assert row["bad_t"] == 0

        con = duck.connect(lake_settings)
        view = bronze_spec(topic).name.replace(".", "_")
        n, v = con.execute(f"select count(*), sum(cast(json_extract_string(payload, '$.volume') as double)) "
                           f"from {view}").fetchall()[0]
        assert n == 15_000
        assert v == pytest.approx(row["v"])

        q = spark.read.format("delta").load(dead_letter_spec(topic).path(lake_settings))
        reasons = {r["key"]: r["reason"] for r in q.collect()}
        assert set(reasons) == {"synthetic:BAD", "synthetic:BTC/USD"}
        assert reasons["synthetic:BAD"].startswith("invalid payload=")
        assert "JSON" in reasons["synthetic:BAD"]
        assert reasons["synthetic:BTC/USD"].startswith("invalid high='NaN-ish'")
    finally:
        SCHEMAS.pop(topic, None)


def test_producer_dead_letters_land_in_their_quarantine_table_with_reason(spark, kafka_bootstrap, lake_settings):
    from cryptolake.schemas import SCHEMAS
    from cryptolake.topics import dlq
    from spark_jobs.bronze.landing import land_dead_letters

    topic = f"test.ohlcv_{uuid.uuid4().hex[:8]}"
    SCHEMAS[topic] = OhlcvV1
    try:
        ensure_topics([topic], lake_settings, partitions=1)
        bad = json.loads(synthetic_candle(7, "BTC/USD").model_dump_json())
        bad["timeframe"] = "7m"
        with Producer(lake_settings) as producer:
            assert producer.send(topic, bad, key="synthetic:BTC/USD") is False  # rejected on produce

        first = land_dead_letters(topic, settings=lake_settings)
        again = land_dead_letters(topic, settings=lake_settings)

        assert (first.topic, first.rows_quarantined, again.rows_quarantined) == (dlq(topic), 1, 0)
        rows = spark.read.format("delta").load(dead_letter_spec(dlq(topic)).path(lake_settings)).collect()
        assert len(rows) == 1
        assert rows[0]["reason"].startswith("invalid timeframe='7m'")
        assert json.loads(rows[0]["payload"])["timeframe"] == "7m"
        assert rows[0]["topic"] == dlq(topic) and rows[0]["key"] == "synthetic:BTC/USD"
    finally:
        SCHEMAS.pop(topic, None)


def test_a_checkpoint_of_another_kafka_cluster_is_refused_not_resumed(spark, kafka_bootstrap, lake_settings):
    """Offsets are per cluster: resuming another cluster's checkpoint would silently skip records."""
    from cryptolake.bus import cluster_id
    from cryptolake.errors import ConfigError
    from cryptolake.schemas import SCHEMAS
    from spark_jobs.bronze.landing import CLUSTER_MARKER, checkpoint_location, land_topic

    topic = f"test.ohlcv_{uuid.uuid4().hex[:8]}"
    SCHEMAS[topic] = OhlcvV1
    try:
        ensure_topics([topic], lake_settings, partitions=3)
        produce(lake_settings, topic, 0, 30)
        assert land_topic(topic, settings=lake_settings).rows_landed == 30
        marker = Path(checkpoint_location("bronze", topic, lake_settings).removeprefix("file://")) / CLUSTER_MARKER
        assert marker.read_text().strip() == cluster_id(lake_settings)

        marker.write_text("another-cluster\n")  # as if the checkpoint came from another broker
        marker.with_name(f".{CLUSTER_MARKER}.crc").unlink(missing_ok=True)  # Hadoop's checksum of the old text
        produce(lake_settings, topic, 30, 60)
        with pytest.raises(ConfigError, match="another-cluster") as err:
            land_topic(topic, settings=lake_settings)
        assert checkpoint_location("bronze", topic, lake_settings) in str(err.value)
        bronze = spark.read.format("delta").load(bronze_spec(topic).path(lake_settings))
        assert bronze.count() == 30  # nothing landed from the refused checkpoint
    finally:
        SCHEMAS.pop(topic, None)
