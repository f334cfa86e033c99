"""`cryptolake connect market` (a real process) against the local exchange replaying the real Binance BTCUSDT
1-minute candles: every closed candle reaches market.ohlcv exactly once, counted against the venue's candles,
through a SIGKILL of the connector and through the broker stopped for 30 seconds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from cryptolake import topics
from cryptolake.settings import Settings
from infra import broker
from infra.broker import free_port
from ingest.localexchange.server import LocalExchange, LocalExchangeConfig
from tests.conftest import settings_in

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
ONE_MIN = "market/ohlcv_1m/nautilus_trader/btc-perp-20211231-20220201_1m.csv.gz"


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A broker of this module's own (fresh topics: the counts are exact)."""
    settings = settings_in(tmp_path_factory.mktemp("live"), own_state=True)
    broker.start(settings)
    yield settings
    broker.stop(settings)


def _env(settings: Settings) -> dict[str, str]:
    return {**os.environ, "CRYPTOLAKE__PATHS__STATE_DIR": str(settings.paths.state_dir),
            "CRYPTOLAKE__PATHS__JARS_DIR": str(settings.paths.jars_dir),
            "CRYPTOLAKE__PATHS__LAKE_ROOT": settings.paths.lake(), "CRYPTOLAKE__LOG_LEVEL": "WARNING"}


def _connector(settings: Settings, url: str, venue: str, port: int, log: Path) -> subprocess.Popen:
    out = log.open("ab")
    return subprocess.Popen([sys.executable, "-m", "cli.main", "connect", "market", "--base-url", url, "--venue",
                             venue, "--metrics-port", str(port)], env=_env(settings), stdout=out,
                            stderr=subprocess.STDOUT)


def _metric(port: int, name: str) -> float | None:
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return None
    for line in body.splitlines():
        if line.startswith(name):
            return float(line.rsplit(" ", 1)[1])
    return None


def _wait(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def _published(settings: Settings, venue: str) -> Counter[int]:
    """Open time -> copies of the venue's candles in market.ohlcv (the dedupe key exchange/symbol/tf/open time)."""
    from kafka.structs import TopicPartition

    from cryptolake.bus import consumer

    cons = consumer(group_id=None, settings=settings, consumer_timeout_ms=3000)
    try:
        parts = [TopicPartition(topics.MARKET_OHLCV, p) for p in cons.partitions_for_topic(topics.MARKET_OHLCV)]
        cons.assign(parts)
        cons.seek_to_beginning(*parts)
        ends = cons.end_offsets(parts)
        seen: Counter[int] = Counter()
        while any(cons.position(tp) < ends[tp] for tp in parts):
            for records in cons.poll(timeout_ms=1000).values():
                for rec in records:
                    m = json.loads(rec.value)
                    if m["exchange"] == venue:
                        assert (m["symbol"], m["timeframe"]) == ("BTC/USDT", "1m")
                        seen[int(m["event_time"])] += 1
        return seen
    finally:
        cons.close()


def _venue_candles(ex: LocalExchange) -> list[int]:
    rep = ex.markets["BTCUSDT"]
    return [c.open_time for c in rep.visible_candles()]


def _exchange(shared_data: Path) -> LocalExchange:
    ex = LocalExchange(LocalExchangeConfig(candle_files={"BTC/USDT": shared_data / ONE_MIN}, candle_step_s=0.1,
                                           candle_start_index=200))
    ex.start()
    return ex


def _caught_up(ex: LocalExchange, port: int) -> bool:
    last = _metric(port, "cryptolake_connector_last_candle_open_seconds")
    buffered = _metric(port, "cryptolake_producer_buffered")
    return last is not None and buffered == 0 and int(last * 1000) == _venue_candles(ex)[-1]


def test_every_closed_candle_once_through_a_sigkill(own: Settings, shared_data: Path, tmp_path: Path) -> None:
    ex = _exchange(shared_data)
    port = free_port()
    proc = _connector(own, ex.base_url, "kill-venue", port, tmp_path / "c.log")
    try:
        _wait(lambda: (_metric(port, "cryptolake_connector_last_candle_open_seconds") or 0) > 0, 90, "first candles")
        time.sleep(3)
        proc.send_signal(signal.SIGKILL)  # mid-stream: the restart resumes after what Kafka holds
        proc.wait(10)
        time.sleep(2)  # the venue moves on meanwhile: the restart fills that hole over REST
        proc = _connector(own, ex.base_url, "kill-venue", port, tmp_path / "c.log")
        _wait(lambda: _metric(port, "cryptolake_producer_buffered") is not None, 90, "the restarted connector")
        time.sleep(3)
        ex.pause()
        _wait(lambda: _caught_up(ex, port), 60, "the connector to catch up")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        venue = _venue_candles(ex)
    finally:
        if proc.poll() is None:
            proc.kill()
        ex.stop()
    seen = _published(own, "kill-venue")
    assert len(venue) > 250  # 200 of history + the replayed ones
    assert sorted(seen) == venue  # none lost
    assert max(seen.values()) == 1  # none doubled, not even across the SIGKILL


def test_broker_down_for_30_seconds_loses_and_doubles_nothing(own: Settings, shared_data: Path,
                                                             tmp_path: Path) -> None:
    ex = _exchange(shared_data)
    port = free_port()
    proc = _connector(own, ex.base_url, "outage-venue", port, tmp_path / "c.log")
    try:
        _wait(lambda: (_metric(port, "cryptolake_connector_last_candle_open_seconds") or 0) > 0, 90, "first candles")
        before = broker.status(own)
        assert before is not None and broker.stop(own)
        time.sleep(30)  # the venue keeps replaying (about 300 candles) while the broker is down
        buffered = _metric(port, "cryptolake_producer_buffered")
        assert buffered is not None and buffered > 100  # waiting in the producer's local queue
        assert proc.poll() is None  # the connector did not die
        after = broker.start(own)
        assert after.bootstrap == before.bootstrap
        time.sleep(3)
        ex.pause()
        _wait(lambda: _caught_up(ex, port), 120, "delivery after the outage")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        venue = _venue_candles(ex)
    finally:
        if proc.poll() is None:
            proc.kill()
        ex.stop()
        broker.start(own)
    seen = _published(own, "outage-venue")
    assert sorted(seen) == venue and max(seen.values()) == 1
