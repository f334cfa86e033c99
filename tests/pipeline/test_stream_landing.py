"""`cryptolake stream land` as a process: exactly once across SIGKILL and a kill between Delta commit and checkpoint.

REAL candles (nautilus_trader 1m BTC bars, ../shared/data) under a unique exchange name are sent to
``market.ohlcv``; the landing child is killed and restarted, and bronze is counted against the source:
every candle exactly once, none lost, none doubled.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cryptolake import topics
from cryptolake.bus import Producer, ensure_topics
from cryptolake.settings import Settings
from spark_jobs.bronze.landing import FAULT_EXIT_AFTER_COMMIT_ENV
from tests.pipeline.streamproc import (
    bronze_candles,
    child_env,
    kill_group,
    private_stack,
    real_candles,
    start_child,
    stop_child,
    stop_private_stack,
    total_bronze,
    wait_for,
)

pytestmark = [pytest.mark.spark, pytest.mark.kafka, pytest.mark.slow]
N = 3_000
LAND = ["stream", "land", "--topic", topics.MARKET_OHLCV, "--trigger-seconds", "0.5",
        "--max-offsets-per-trigger", "400"]


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory, lake_settings: Settings) -> Iterator[Settings]:
    """One lake, checkpoint and private broker for the module: the tests continue one landing's history."""
    settings = private_stack(tmp_path_factory.mktemp("stream_land"), lake_settings)
    yield settings
    stop_private_stack(settings)


def _send(settings: Settings, candles: list) -> None:
    ensure_topics([topics.MARKET_OHLCV], settings)
    with Producer(settings) as producer:
        for c in candles:
            producer.send_message(c)


def _assert_exactly_once(settings: Settings, exchange: str, candles: list) -> None:
    rows = bronze_candles(settings, exchange)
    assert total_bronze(settings).duplicated().sum() == 0  # no Kafka record twice, of any test
    source = sorted(c.event_time for c in candles)
    landed = sorted(int(t.timestamp() * 1000) for t in rows["event_time"])
    assert len(rows) == len(candles), f"{len(rows)} bronze rows for {len(candles)} source candles"
    assert rows[["partition", "offset"]].duplicated().sum() == 0
    assert landed == source  # 0 duplicated, 0 lost, counted against the source


def test_sigkill_mid_batch_then_a_kill_after_the_delta_commit_then_restart_lands_every_candle_once(
        lake: Settings, shared_data: Path, tmp_path: Path) -> None:
    """Three drivers on one checkpoint: SIGKILLed mid-stream, then one that exits right after its first
    non-empty bronze commit (before the checkpoint's), then one that lands the rest and stops on SIGTERM.

    The third replays the second's last batch, which Delta already holds: without the Delta txn ids
    (txnAppId/txnVersion) the replay appends it a second time and this test fails (checked by removing
    them from ``landing._append``). One sequence, not two tests: each driver start costs a JVM.
    """
    exchange = f"nautilus{uuid.uuid4().hex[:8]}"
    candles = real_candles(shared_data, exchange, N)
    _send(lake, candles)
    log = tmp_path / "land.log"
    env = child_env(lake)
    first = start_child(LAND, env, log)
    try:
        # Mid-stream: some batches committed, more to come (400 records per trigger).
        wait_for(lambda: 0 < len(bronze_candles(lake, exchange)) < N, 300, "a first landed batch", first, log,
                 poll=0.2)
    finally:
        kill_group(first)
    killed = len(bronze_candles(lake, exchange))
    assert 0 < killed < N
    crashing = start_child(LAND, child_env(lake, **{FAULT_EXIT_AFTER_COMMIT_ENV: "17"}), log)
    try:
        crashing.wait(timeout=300)  # a Spark driver's start and first batch: 150 s was short at load 20
    finally:
        kill_group(crashing)
    assert crashing.returncode == 17, log.read_text()[-2000:]
    committed = len(bronze_candles(lake, exchange))
    assert killed < committed <= killed + 400 < N  # one more batch is in Delta; its checkpoint commit is not
    assert total_bronze(lake).duplicated().sum() == 0
    # the restart in bigger batches: what it lands is the point, not how many triggers (on CI's loaded cores
    # a fresh driver's first batches take tens of seconds each)
    last = start_child([*LAND[:-1], "1500"], env, log)
    try:
        wait_for(lambda: len(bronze_candles(lake, exchange)) >= N, 360, "every candle landed", last, log)
        more = real_candles(shared_data, exchange, 200, start=N)  # a live feed keeps sending
        _send(lake, more)
        wait_for(lambda: len(bronze_candles(lake, exchange)) >= N + 200, 180, "the later candles", last, log)
    finally:
        code = stop_child(last)
    assert code == 0, log.read_text()[-2000:]  # SIGTERM: a clean stop after the current batch
    _assert_exactly_once(lake, exchange, candles + more)
