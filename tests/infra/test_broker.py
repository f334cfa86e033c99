"""The local KRaft broker: start, idempotent start, produce/consume, stop leaves no JVM.

Uses its own state folder (not the shared one of the `kafka_bootstrap` fixture) so stopping it
cannot disturb other tests; only one broker JVM is started here at a time.
"""

from __future__ import annotations

import json
import os

import pytest

from cryptolake.bus import Producer, broker_state_file, consumer, ensure_topics
from cryptolake.settings import KafkaSettings, Settings
from infra import broker
from tests.conftest import settings_in


@pytest.fixture
def own_broker_settings(tmp_path) -> Settings:
    kafka = KafkaSettings(heap="256m", start_timeout_s=90)
    return settings_in(tmp_path, own_state=True).model_copy(update={"kafka": kafka})


@pytest.mark.kafka
def test_broker_lifecycle_start_reuse_produce_consume_stop(own_broker_settings):
    settings = own_broker_settings
    assert broker.status(settings) is None
    info = broker.start(settings)
    try:
        state = json.loads(broker_state_file(settings).read_text())
        assert {state["bootstrap"], state["pid"]} == {info.bootstrap, info.pid}
        assert info.bootstrap == f"127.0.0.1:{info.port}" and info.port != info.controller_port

        again = broker.start(settings)
        assert again.pid == info.pid and again.bootstrap == info.bootstrap
        assert broker.status(settings) == info

        ensure_topics(["stacktest.ping"], settings, partitions=1)
        with Producer(settings) as producer:
            producer.send_raw("stacktest.ping", "k1", '{"hello": "kafka"}')
        cons = consumer("stacktest.ping", group_id=None, settings=settings, consumer_timeout_ms=10_000)
        try:
            got = [(m.key, m.value) for m in cons]
        finally:
            cons.close()
        assert got == [("k1", '{"hello": "kafka"}')]
    finally:
        stopped = broker.stop(settings)

    assert stopped is True
    assert not broker_state_file(settings).exists()
    assert not os.path.exists(f"/proc/{info.pid}")  # gone, not even a zombie
    assert broker.broker_java_pids(settings) == []
    assert broker.status(settings) is None
    assert broker.stop(settings) is False
