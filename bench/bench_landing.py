"""Benchmark: land N Kafka messages into Delta bronze with ``land_topic`` vs a plain-Python peer.

The peer is what one would write without Spark: a kafka-python consumer, the same
``check_payload`` per message, and one ``deltalake.write_deltalake`` append. Also times DuckDB
over the landed table with the delta extension (``delta_scan``) vs a delta-rs Arrow dataset.
Messages are SYNTHETIC 1m candles (valid ``OhlcvV1``; prices from a formula), labelled exchange
"synthetic". Uses the local broker (started if needed, stopped again if this script started it)
and a temporary lake.

    .venv/bin/python bench/bench_landing.py --messages 175000
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any


def tree_cpu_seconds(root: int) -> float:
    """user+system CPU seconds of ``root`` and all its live descendants (from /proc)."""
    from pipeline.interval import process_tree_cpu_seconds

    return process_tree_cpu_seconds(root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=175_000, help="messages to produce and land")
    parser.add_argument("--skip-peer", action="store_true", help="do not run the plain-Python peer")
    parser.add_argument("--repeat", type=int, default=1,
                        help="land the topic this many times (fresh lake each time) in one JVM: later runs are warm")
    parser.add_argument("--reuse-topic", default="", help="land an existing topic (already holding --messages)")
    args = parser.parse_args()
    from cryptolake.logs import configure_logging

    configure_logging("INFO")

    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    from cryptolake import duck
    from cryptolake.bus import Producer, consumer, ensure_topics
    from cryptolake.schemas import SCHEMAS, OhlcvV1
    from cryptolake.tables import bronze_spec
    from infra import broker
    from spark_jobs.bronze.landing import check_payload, land_topic
    from spark_jobs.session import get_spark, stop_spark
    from tests.conftest import settings_in

    tmp = Path(tempfile.mkdtemp(prefix="bench-landing-"))
    settings = settings_in(tmp)
    started = broker.status(settings) is None
    broker.start(settings)
    topic = args.reuse_topic or f"bench.ohlcv_{uuid.uuid4().hex[:8]}"
    SCHEMAS[topic] = OhlcvV1
    try:
        ensure_topics([topic], settings, partitions=3)
        t0 = time.perf_counter()
        with Producer(settings) as producer:
            for i in range(0 if args.reuse_topic else args.messages):
                sym = ("BTC/USD", "EOS/USD", "SOL/USD")[i % 3]
                event = 1_600_000_020_000 + (i // 3) * 60_000
                price = 100.0 + (i % 97) * 0.5
                c = OhlcvV1(schema_version=1, event_time=event, available_time=event + 60_000,
                            ingest_time=event + 60_500, exchange="synthetic", symbol=sym, timeframe="1m",
                            open=price, high=price + 1, low=price - 1, close=price, volume=float(i % 13))
                producer.send_raw(topic, c.key(), c.model_dump_json())
        produce_s = time.perf_counter() - t0
        print(f"topic {topic}: produced {0 if args.reuse_topic else args.messages} messages in {produce_s:.1f}s")

        t0 = time.perf_counter()
        spark = get_spark(settings)
        spark_start_s = time.perf_counter() - t0
        jvm_view: Any = spark.sparkContext._jvm
        jvm = int(jvm_view.java.lang.ProcessHandle.current().pid())
        for run in range(args.repeat):
            if run:
                settings = settings.model_copy(update={"paths": settings.paths.model_copy(update={
                    "lake_root": str(tmp / f"lake{run}"), "checkpoint_root": str(tmp / f"ckpt{run}")})})
            cpu0 = tree_cpu_seconds(jvm)
            t0 = time.perf_counter()
            result = land_topic(topic, settings=settings)
            land_s = time.perf_counter() - t0
            land_cpu = tree_cpu_seconds(jvm) - cpu0
            assert result.rows_landed == args.messages, result
            print(f"run {run + 1} ({'cold JVM' if run == 0 else 'warm JVM'}): land_topic {result.rows_landed} rows "
                  f"in {land_s:.1f}s wall ({result.rows_landed / land_s:,.0f} rows/s), {land_cpu:.1f} CPU s "
                  f"(Spark JVM + Python workers); Spark start {spark_start_s:.1f}s not included; "
                  f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} shared cores")
        stop_spark()

        path = bronze_spec(topic).path(settings)
        con = duck.connect(settings)
        view = bronze_spec(topic).name.replace(".", "_")
        q = 'select "partition", count(*), sum("offset"), min(event_time) from {} group by 1 order by 1'
        t0 = time.perf_counter()
        for _ in range(5):
            ext = con.execute(q.format(view)).fetchall()
        ext_s = (time.perf_counter() - t0) / 5
        t0 = time.perf_counter()
        for _ in range(5):
            dataset = DeltaTable(path).to_pyarrow_dataset()
            con.register("arrow_ds", dataset)
            arrow = con.execute(q.format("arrow_ds")).fetchall()
        arrow_s = (time.perf_counter() - t0) / 5
        assert ext == arrow, (ext, arrow)
        print(f"duckdb over {args.messages} rows: delta extension {ext_s * 1000:.1f} ms, "
              f"delta-rs arrow dataset {arrow_s * 1000:.1f} ms, ratio arrow/extension {arrow_s / ext_s:.2f}x")

        if not args.skip_peer:
            t0 = time.perf_counter()
            peer_cpu0 = time.process_time()
            cons = consumer(topic, group_id=None, settings=settings, consumer_timeout_ms=5000,
                            max_poll_records=5000, fetch_max_bytes=64 * 1024 * 1024)
            rows: dict[str, list[object]] = {k: [] for k in ("key", "payload", "partition", "offset", "event_time")}
            for m in cons:
                reason, et, _, _ = check_payload(m.value, OhlcvV1)
                if reason is None:
                    rows["key"].append(m.key)
                    rows["payload"].append(m.value)
                    rows["partition"].append(m.partition)
                    rows["offset"].append(m.offset)
                    rows["event_time"].append(et)
            cons.close()
            write_deltalake(str(tmp / "peer"), pa.table(rows))
            peer_s = time.perf_counter() - t0 - 5.0  # minus the consumer's final idle timeout
            peer_cpu = time.process_time() - peer_cpu0
            assert len(rows["key"]) == args.messages
            print(f"peer (kafka-python + pydantic + delta-rs): {args.messages} rows in {peer_s:.1f}s, "
                  f"{peer_cpu:.1f} CPU s")
            print(f"ratio peer/land_topic wall: {peer_s / land_s:.2f}x, CPU: {peer_cpu / land_cpu:.2f}x")
    finally:
        SCHEMAS.pop(topic, None)
        if started:
            broker.stop(settings)


if __name__ == "__main__":
    main()
