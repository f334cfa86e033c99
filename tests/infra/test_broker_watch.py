"""The supervisor's broker watch: a SIGKILLed broker is started again on the same port, with its data."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from cryptolake.bus import Producer, consumer, ensure_topics
from cryptolake.settings import KafkaSettings, Settings
from infra import broker
from infra.broker_watch import BrokerWatch
from tests.conftest import settings_in


@pytest.fixture
def own_broker_settings(tmp_path) -> Settings:
    kafka = KafkaSettings(heap="256m", start_timeout_s=90)
    return settings_in(tmp_path, own_state=True).model_copy(update={"kafka": kafka})


def _wait(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.kafka
def test_a_killed_broker_comes_back_on_its_port_with_every_acknowledged_record(own_broker_settings) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    settings = own_broker_settings
    info = broker.start(settings)
    registry = CollectorRegistry()
    watch = BrokerWatch(settings, 0.5, registry)
    stop = threading.Event()
    try:
        ensure_topics(["watchtest.ping"], settings, partitions=1)
        with Producer(settings) as producer:  # acknowledged (acks=all) before the kill
            for i in range(100):
                producer.send_raw("watchtest.ping", f"k{i}", f'{{"i": {i}}}')
        watch.start(stop)
        _wait(lambda: watch.up, 30, "the first check")
        assert watch.restarts == 0 and watch.bootstrap == info.bootstrap
        os.kill(info.pid, signal.SIGKILL)
        _wait(lambda: watch.restarts == 1 and watch.up, 120, "the watch to restart the broker")
        again = broker.status(settings)
        assert again is not None and again.pid != info.pid
        assert again.bootstrap == info.bootstrap  # same port: every client's bootstrap stays valid
        body = generate_latest(registry).decode()
        assert "cryptolake_broker_restarts 1.0" in body and "cryptolake_broker_up 1.0" in body, body
        cons = consumer("watchtest.ping", group_id=None, settings=settings, consumer_timeout_ms=10_000)
        try:
            keys = [m.key for m in cons]
        finally:
            cons.close()
        assert keys == [f"k{i}" for i in range(100)]  # nothing acknowledged was lost, nothing doubled
    finally:
        stop.set()
        watch.join(timeout_s=100)
        broker.stop(settings)
    assert broker.broker_java_pids(settings) == []
