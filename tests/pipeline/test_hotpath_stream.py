"""The hot consumer's loop on REAL 1m bars with a fake source and producer (no JVM, no network).

Validate -> HotPath -> publish -> flush -> commit: each valid new bar gives one signal with the batch
scorer's id and probability, a malformed candle is dead-lettered naming its field, a replayed bar is
skipped, offsets are committed only once everything of the poll is acknowledged, and a crash before
the commit replays the poll with the same ids (the trader skips them). Also: the champion gate, the
silver seed and the stage stamps.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter, deque
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryptolake import topics
from cryptolake.errors import BrokerUnavailableError
from cryptolake.schemas import Message, OhlcvV1, SignalV1
from models.base import Model
from models.registry import ModelRegistry
from models.scoring import score_frame
from pipeline.hot_stream import HotConsumer, metrics_observer, silver_seed, start_hot
from pipeline.hotpath import HotPath, bars_frame
from pipeline.stream_metrics import StreamMetrics
from tests.conftest import settings_in
from tests.pipeline.hotproc import FLAT, JUMP, batch_gold, train_tiny, write_silver
from tests.pipeline.streamproc import real_candles
from trader.feeds.kafka_source import Record

SEED, LIVE, TRAIN = 1_000, 30, 900
TOPIC = topics.MARKET_OHLCV
KEYS = ["exchange", "symbol", "timeframe", "ts"]


class FakeProducer:
    """Signals and dead letters, acknowledged on ``flush`` (which fails ``fail_flushes`` times first)."""

    def __init__(self) -> None:
        self.sent: list[SignalV1] = []
        self.acked: list[SignalV1] = []
        self.dead: list[dict[str, str]] = []
        self.unflushed = 0
        self.fail_flushes = 0

    def send_message(self, msg: Message) -> None:
        assert isinstance(msg, SignalV1)
        self.sent.append(msg)
        self.unflushed += 1

    def dead_letter(self, topic: str, key: str, raw: str, reason: str) -> None:
        self.dead.append({"topic": topic, "key": key, "raw": raw, "reason": reason})
        self.unflushed += 1

    def flush(self, timeout: float = 60.0) -> None:
        if self.fail_flushes:
            self.fail_flushes -= 1
            raise BrokerUnavailableError("flush: 3 records not acknowledged within 60 s")
        self.acked += self.sent[len(self.acked):]
        self.unflushed = 0


class FakeSource:
    """Polls from a list; a commit is refused while anything sent is unacknowledged."""

    def __init__(self, polls: list[list[Record]], producer: FakeProducer) -> None:
        self.polls = deque(polls)
        self.producer = producer
        self.committed: dict[tuple[str, int], int] = {}

    def poll(self, timeout_ms: int) -> list[Record]:
        return self.polls.popleft() if self.polls else []

    def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        assert self.producer.unflushed == 0, "offsets committed before the poll's records were acknowledged"
        self.committed.update(offsets)

    def close(self) -> None:
        pass


class ListStages:
    def __init__(self) -> None:
        self.frames: list[pd.DataFrame] = []

    def append(self, rows: pd.DataFrame) -> None:
        self.frames.append(rows)

    def rows(self) -> pd.DataFrame:
        return pd.concat(self.frames, ignore_index=True)


@pytest.fixture(scope="module")
def world(shared_data: Path) -> tuple[list[OhlcvV1], Model, pd.DataFrame]:
    candles = real_candles(shared_data, "hotunit", SEED + LIVE)
    bars = bars_frame(candles)
    model = train_tiny(bars.iloc[:TRAIN])
    expected = score_frame(model, batch_gold(bars))
    expected = expected[expected["bar_time"] >= bars["open_time"].iloc[SEED]].reset_index(drop=True)
    assert len(expected) == LIVE  # every live bar is valid and out of sample
    return candles, model, expected


def _clock() -> itertools.count[float]:
    return itertools.count(1_900_000_000.0, 0.01)  # deterministic: every reading 10 ms later


def _records(candles: list[OhlcvV1], first_offset: int, partition: int = 0) -> list[Record]:
    return [Record(TOPIC, partition, first_offset + i, f"{c.exchange}:{c.symbol}", c.model_dump_json())
            for i, c in enumerate(candles)]


def _consumer(model: Model, candles: list[OhlcvV1], polls: list[list[Record]], producer: FakeProducer,
              stages: ListStages | None = None, metrics: StreamMetrics | None = None) -> tuple[HotConsumer, FakeSource]:
    ticks = _clock()
    clock = lambda: next(ticks)  # noqa: E731
    hot = HotPath(model, jump_threshold=JUMP, max_flat_bars=FLAT, clock=clock)
    hot.seed(bars_frame(candles[:SEED]))
    source = FakeSource(polls, producer)
    consumer = HotConsumer(hot, source, producer, producer, stages, timeframes=("1m",), stamp_every_s=1e9,
                           clock=clock, on_batch=None if metrics is None else metrics_observer(metrics))
    return consumer, source


def _polls(candles: list[OhlcvV1]) -> list[list[Record]]:
    """One bar, then one bar with a malformed candle on partition 1, then a replay with a burst, then one by one."""
    live = candles[SEED:]
    bad = json.loads(live[1].model_dump_json()) | {"high": "not-a-number", "exchange": "hotunit"}
    recs = _records(live, 10)
    polls = [recs[:1], [*recs[1:2], Record(TOPIC, 1, 0, "hotunit:BTC/USDT", json.dumps(bad))],
             [*_records(candles[SEED:SEED + 1], 5), *recs[2:12]], []]
    return polls + [[r] for r in recs[12:]]


def test_each_valid_bar_gives_one_signal_equal_to_the_batch_scorers_and_offsets_follow_the_acks(world) -> None:
    candles, model, expected = world
    producer, stages, metrics = FakeProducer(), ListStages(), StreamMetrics()
    consumer, source = _consumer(model, candles, _polls(candles), producer, stages, metrics)
    while source.polls:
        consumer.step()
    consumer.flush_stamps()

    assert [m.signal_id for m in producer.acked] == list(expected["signal_id"])  # one per bar, in order
    got = np.array([m.probability for m in producer.acked])
    np.testing.assert_allclose(got, expected["probability"], rtol=0, atol=2.5e-7)  # float32 ulp
    assert [m.direction for m in producer.acked] == list(expected["direction"])
    first = producer.acked[0]
    assert first.event_time == candles[SEED].event_time and first.available_time == candles[SEED].available_time
    assert len(producer.dead) == 1 and producer.dead[0]["topic"] == TOPIC
    assert producer.dead[0]["reason"].startswith("invalid high='not-a-number'"), producer.dead[0]["reason"]
    assert source.committed == {(TOPIC, 0): 10 + LIVE, (TOPIC, 1): 1}
    stats = consumer.stats
    assert (stats.records, stats.candles, stats.dead_lettered, stats.skipped, stats.signals) == (
        LIVE + 2, LIVE + 1, 1, 1, LIVE)
    assert stats.reasons == {"high": 1}

    wide = stages.rows().pivot_table(index=KEYS, columns="stage", values="stage_time", aggfunc="min")
    assert len(wide) == LIVE and wide[["ingest", "hot_features", "hot_signal"]].notna().all().all()
    assert ((wide["ingest"] <= wide["hot_features"]) & (wide["hot_features"] < wide["hot_signal"])).all()
    ingest_ms = sorted(c.ingest_time for c in candles[SEED:])
    assert sorted(int(t.value // 1_000_000) for t in wide["ingest"]) == ingest_ms
    assert metrics.registry.get_sample_value("cryptolake_stream_bar_hop_seconds_count",
                                             {"hop": "ingest->hot_signal"}) == LIVE
    p99 = metrics.registry.get_sample_value("cryptolake_stream_bar_latency_recent_seconds",
                                            {"series": "hot_signal", "quantile": "0.99"})
    assert p99 is not None and p99 > 0


def test_a_failed_flush_commits_nothing_and_the_restart_republishes_the_same_ids(world) -> None:
    candles, model, expected = world
    producer = FakeProducer()
    polls = _polls(candles)
    consumer, source = _consumer(model, candles, polls, producer)
    consumer.step()
    producer.fail_flushes = 1  # the broker does not acknowledge the second poll's signal and dead letter
    with pytest.raises(BrokerUnavailableError):
        consumer.step()
    assert source.committed == {(TOPIC, 0): 11}
    # the restart: windows seeded from the same silver (which has not seen the live bars), the source
    # resumes group_source's replay_records before the committed offsets: here from the beginning
    restarted, source2 = _consumer(model, candles, _polls(candles), producer)
    source2.committed = dict(source.committed)
    while source2.polls:
        restarted.step()

    ids = [m.signal_id for m in producer.acked]
    assert Counter(ids).most_common(1)[0][1] == 2  # the unacknowledged bar went out again ...
    assert set(ids) == set(expected["signal_id"])  # ... with the same id: no bar lost, none invented
    seen: dict[str, SignalV1] = {}
    for m in producer.acked:  # the trader's rule: an id it has seen is skipped
        assert seen.setdefault(m.signal_id, m) == m  # a re-published signal is identical
    assert list(seen) == list(expected["signal_id"])
    assert source2.committed == {(TOPIC, 0): 10 + LIVE, (TOPIC, 1): 1}


def test_a_model_that_failed_the_champion_gate_consumes_and_publishes_nothing(world, tmp_path: Path) -> None:
    _, model, _ = world
    registry = ModelRegistry(tmp_path / "registry")
    registry.register(model, gate={"passed": False, "reason": "lost to always-up out of sample"})
    run = start_hot(model.model_version, registry, settings_in(tmp_path), timeframes=("1m",))
    assert run.consumer is None
    assert run.refused == f"model {model.model_version} failed the champion gate: lost to always-up out of sample"


def test_the_seed_is_the_last_bars_of_each_series_of_the_timeframe_in_silver(shared_data: Path, tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    a = bars_frame(real_candles(shared_data, "seeda", 1_600))
    b = bars_frame(real_candles(shared_data, "seedb", 900, start=20_000))
    write_silver(settings, pd.concat([a, b], ignore_index=True))
    seed = silver_seed(settings, capacity=500, timeframes=("1m",))
    for bars in (a, b):
        got = seed[seed["exchange"] == bars["exchange"].iloc[0]].reset_index(drop=True)
        want = bars.tail(500).reset_index(drop=True)
        assert list(got["open_time"]) == list(want["open_time"])
        np.testing.assert_array_equal(got["close"].to_numpy(), want["close"].to_numpy())
    assert silver_seed(settings, capacity=500, timeframes=("30m",)).empty  # no 30m series in silver
    assert silver_seed(settings_in(tmp_path / "none"), capacity=500, timeframes=("1m",)).empty


def test_the_warm_up_scores_a_window_and_changes_none(world) -> None:
    candles, model, _ = world
    hot = HotPath(model, jump_threshold=JUMP, max_flat_bars=FLAT)
    assert hot.warm_up() == 0  # nothing seeded, nothing to warm
    hot.seed(bars_frame(candles[:SEED]))
    before = {k: w.copy() for k, w in hot.windows.items()}
    assert hot.warm_up() > 0
    assert hot.windows.keys() == before.keys()
    for k, w in hot.windows.items():
        pd.testing.assert_frame_equal(w, before[k])


def test_ten_thousand_fuzzed_candles_mixed_with_the_valid_ones_are_each_dead_lettered_naming_the_field(
        world) -> None:
    import random

    from tests.spark_jobs.bronze.fuzz import KINDS, cases

    candles, model, expected = world
    fuzzed = cases(OhlcvV1, candles[SEED:], n_bad=10_000, n_good=LIVE, seed=12)
    good = sorted((c for c in fuzzed if c.field is None), key=lambda c: json.loads(c.value)["event_time"])
    bad = [c for c in fuzzed if c.field is not None]
    assert {c.kind for c in bad} == set(KINDS) and len(good) == LIVE
    rng = random.Random(12)
    stream = list(good)  # a series' candles stay in order (one partition); malformed ones anywhere between
    for c in bad:
        stream.insert(rng.randint(0, len(stream)), c)
    records = [Record(TOPIC, 0, i, c.key, c.value.decode("utf-8", errors="replace")) for i, c in enumerate(stream)]
    producer = FakeProducer()
    consumer, source = _consumer(model, candles, [records[i:i + 500] for i in range(0, len(records), 500)], producer)
    while source.polls:
        consumer.step()

    assert [m.signal_id for m in producer.acked] == list(expected["signal_id"])  # every valid bar: one signal
    assert len(producer.dead) == len(bad) and consumer.stats.dead_lettered == len(bad)
    raw_field = {c.value.decode("utf-8", errors="replace"): c.field for c in bad}
    for d in producer.dead:
        field_name = raw_field[d["raw"]]
        assert d["reason"].startswith(f"invalid {field_name}="), (field_name, d["reason"][:200])
    assert source.committed == {(TOPIC, 0): len(records)}
