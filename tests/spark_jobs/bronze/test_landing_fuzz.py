"""10,000+ fuzzed malformed messages mixed with valid ones, across three landed topics (ohlcv, trades,
tickers): the checks name the field of every malformed one; the continuous landing lands every valid
one exactly once and quarantines every malformed one with that reason, without a crash.

Cases: tests.spark_jobs.bronze.fuzz (seeded; valid candles REAL, trades and tickers SYNTHETIC).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from cryptolake.schemas import Message, OhlcvV1, TickerV1, TradeV1
from spark_jobs.bronze.landing import check_payload
from tests.pipeline.streamproc import real_candles
from tests.spark_jobs.bronze.fuzz import KINDS, Case, cases

MODELS: tuple[type[Message], ...] = (OhlcvV1, TradeV1, TickerV1)
N_BAD, N_GOOD = 3_400, 400  # per topic: 10,200 malformed and 1,200 valid in all


def _all_cases(shared_data: Path, exchange: str) -> dict[type[Message], list[Case]]:
    candles = real_candles(shared_data, exchange, 500)
    return {m: cases(m, candles, N_BAD, N_GOOD, seed=i) for i, m in enumerate(MODELS)}


def _reason_names(reason: str, field: str) -> bool:
    return reason.startswith(f"invalid {field}=")


def test_every_fuzzed_payload_is_judged_and_its_reason_names_the_field(shared_data: Path) -> None:
    for model, cs in _all_cases(shared_data, "nautilusfuzz").items():
        kinds = {c.kind for c in cs}
        assert kinds == {*KINDS, "valid"}
        for c in cs:
            reason = check_payload(c.value.decode("utf-8", errors="replace"), model)[0]
            if c.field is None:
                assert reason is None, (model.__name__, c.key, reason)
            else:
                assert reason is not None and _reason_names(reason, c.field), (model.__name__, c.kind, reason)
                assert len(reason) < 600  # oversized values are shortened in the reason


@pytest.mark.spark
@pytest.mark.kafka
def test_continuous_landing_of_fuzzed_topics(spark, kafka_bootstrap, lake_settings, shared_data: Path) -> None:
    from cryptolake.bus import Producer, ensure_topics
    from cryptolake.schemas import SCHEMAS
    from cryptolake.tables import bronze_spec, dead_letter_spec
    from spark_jobs.bronze.landing import BatchReport, start_landing
    from spark_jobs.streaming import RunningQuery, stop_between_batches

    run = uuid.uuid4().hex[:8]
    by_model = _all_cases(shared_data, f"nautilusfuzz{run}")
    names = {m: f"test.fuzz_{m.__name__.lower()}_{run}" for m in MODELS}
    for m, topic in names.items():
        SCHEMAS[topic] = m
    seen: dict[str, int] = {}
    reports: list[BatchReport] = []

    def on_batch(r: BatchReport) -> None:
        reports.append(r)
        seen[r.topic] = seen.get(r.topic, 0) + r.landed + r.quarantined

    running: list[RunningQuery] = []
    try:
        ensure_topics(list(names.values()), lake_settings, partitions=2)
        with Producer(lake_settings) as producer:
            for m, topic in names.items():
                for c in by_model[m]:
                    producer.send_raw(topic, c.key, c.value)
        for topic in names.values():
            query, busy = start_landing(topic, trigger_seconds=1.0, settings=lake_settings, on_batch=on_batch)
            running.append(RunningQuery(topic, query, busy))
        deadline = time.monotonic() + 180
        total = N_BAD + N_GOOD
        while time.monotonic() < deadline and any(seen.get(t, 0) < total for t in names.values()):
            assert all(rq.query.isActive for rq in running), [rq.query.exception() for rq in running]
            time.sleep(0.5)
        for rq in running:
            assert rq.query.isActive  # 0 crashes
            stop_between_batches(rq)
        for m, topic in names.items():
            assert seen[topic] == total
            good = spark.read.format("delta").load(bronze_spec(topic).path(lake_settings)).toPandas()
            bad = spark.read.format("delta").load(dead_letter_spec(topic).path(lake_settings)).toPandas()
            want_good = {c.key for c in by_model[m] if c.field is None}
            assert len(good) == N_GOOD and set(good["key"]) == want_good  # every valid message once
            assert not good.duplicated(["partition", "offset"]).any()
            assert len(bad) == N_BAD and bad["key"].is_unique
            expected = {c.key: c.field for c in by_model[m] if c.field is not None}
            wrong = [(k, r) for k, r in zip(bad["key"], bad["reason"], strict=True)
                     if not _reason_names(r, str(expected[k]))]
            assert wrong == [], wrong[:5]  # every malformed one quarantined, its reason naming the field
    finally:
        for rq in running:
            if rq.query.isActive:
                rq.query.stop()
        for topic in names.values():
            SCHEMAS.pop(topic, None)
