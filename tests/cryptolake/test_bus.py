"""cryptolake.bus: validated produce through librdkafka, dead letters, delivery errors, partitions."""

from __future__ import annotations

import json
import uuid

import pytest

from cryptolake import topics
from cryptolake.bus import Producer, consumer, ensure_topics, translate_kafka_error
from cryptolake.errors import BrokerUnavailableError, InfrastructureError
from cryptolake.schemas import SCHEMAS, OhlcvV1
from cryptolake.settings import KafkaSettings, Settings

CANDLE = {
    "schema_version": 1, "exchange": "gymcrypto", "symbol": "BTC/USD", "timeframe": "30m",
    "event_time": 1_569_888_000_000, "available_time": 1_569_889_800_000, "ingest_time": 1_569_889_800_000,
    "open": 8300.0, "high": 8310.5, "low": 8290.0, "close": 8305.25, "volume": 12.5,
}


def test_flush_raises_retryable_error_when_no_broker_acknowledges() -> None:
    settings = Settings(kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9"))  # nothing listens on port 9
    producer = Producer(settings, message_timeout_ms=1500)
    assert producer.send(topics.MARKET_OHLCV, CANDLE, "gymcrypto:BTC/USD")
    with pytest.raises((BrokerUnavailableError, InfrastructureError)) as err:
        producer.flush(timeout=5)
    assert "not acknowledged" in str(err.value) or "delivery failed" in str(err.value)


def test_kafka_python_errors_translate_without_attribute_errors() -> None:
    from kafka import errors as kerr

    assert isinstance(translate_kafka_error(kerr.KafkaConnectionError("down"), "x"), BrokerUnavailableError)
    assert isinstance(translate_kafka_error(kerr.KafkaTimeoutError("slow"), "x"), BrokerUnavailableError)
    assert type(translate_kafka_error(ValueError("bad"), "x")) is InfrastructureError


@pytest.mark.kafka
def test_valid_candles_land_on_murmur2_partitions_and_invalid_ones_are_dead_lettered(
    kafka_bootstrap: str, lake_settings: Settings
) -> None:
    from kafka.partitioner.default import murmur2
    from kafka.structs import TopicPartition

    topic = f"test.bus_{uuid.uuid4().hex[:8]}"
    SCHEMAS[topic] = OhlcvV1
    try:
        ensure_topics([topic], lake_settings, partitions=3)
        keys = [f"gymcrypto:SYM{i}/USD" for i in range(12)]
        with Producer(lake_settings) as producer:
            for key in keys:
                assert producer.send(topic, CANDLE, key)
            assert not producer.send(topic, {**CANDLE, "close": float("nan")}, keys[0])
        assert producer.stats.sent[topic] == len(keys)
        assert producer.stats.dead_lettered[topic] == 1

        cons = consumer(group_id=None, settings=lake_settings, consumer_timeout_ms=5000)
        parts = [TopicPartition(topic, p) for p in range(3)]
        cons.assign(parts)
        cons.seek_to_beginning()
        got = {rec.key: (rec.partition, rec.value) for rec in cons}
        cons.close()
        assert set(got) == set(keys)
        for key, (partition, value) in got.items():
            # Java's murmur2, as kafka-python and Spark partition keys: the same key, the same partition.
            assert partition == (murmur2(key.encode()) & 0x7FFFFFFF) % 3, key
            assert OhlcvV1.model_validate_json(value).close == CANDLE["close"]

        dlq = consumer(topics.dlq(topic), group_id=None, settings=lake_settings, consumer_timeout_ms=5000)
        envelopes = [json.loads(rec.value) for rec in dlq]
        dlq.close()
        assert len(envelopes) == 1 and envelopes[0]["key"] == keys[0]
        assert "close" in envelopes[0]["reason"]
    finally:
        SCHEMAS.pop(topic, None)
