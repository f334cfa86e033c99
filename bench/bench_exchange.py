"""Benchmark: local-exchange websocket trades -> validated messages -> Kafka (or an in-process sink),
with p50/p99 latency from websocket receipt to produce acknowledgment, and the order-book update rate.

Peers measured in the same run: (1) raw ``json.loads`` of the same recorded depth diffs (the floor
of any consumer) for the book rate; (2) for producer throughput, the same recorded trades serialised
by a no-op in-process sink vs produced to Kafka (``acks=all``, idempotent) through cryptolake.bus,
to the topic ``bench.market.trades`` (never the real ``market.trades``).

    .venv/bin/python bench/bench_exchange.py --help
    .venv/bin/python bench/bench_exchange.py --speed 50 --trades 3000            # in-process sink
    .venv/bin/python bench/bench_exchange.py --speed 50 --trades 3000 --kafka    # real local broker

With ``--kafka`` the local broker is started with ``infra.broker.start()`` when none is running and
stopped afterwards (a broker that was already running is reused and left running).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptolake.schemas import Message, TradeV1  # noqa: E402
from ingest.exchange.connector import TradeStream, VenueConfig, forget_instances  # noqa: E402
from ingest.exchange.orderbook import BookSynchronizer  # noqa: E402
from ingest.localexchange.data import load_capture  # noqa: E402
from ingest.localexchange.server import LocalExchange, LocalExchangeConfig  # noqa: E402

# A topic of its own: the bench never writes into the real market.trades of a shared broker.
BENCH_TOPIC = "bench.market.trades"
DATA = ROOT.parent / "shared" / "data" / "market" / "orderbook" / "hftbacktest" / "btcusdt_20240808.gz"


def bench_book(capture_path: Path) -> tuple[float, float]:
    capture = load_capture(capture_path)
    diffs = [e.data for e in capture.of_kind("depth")]
    raw = [json.dumps(d) for d in diffs]
    t0 = time.perf_counter()
    for r in raw:
        json.loads(r)
    parse_rate = len(raw) / (time.perf_counter() - t0)
    sync = BookSynchronizer("BTCUSDT", lambda: capture.snapshot)
    t0 = time.perf_counter()
    for d in diffs:
        sync.on_diff(d)
    return len(diffs) / (time.perf_counter() - t0), parse_rate


def _percentiles(lat: list[float]) -> tuple[float, float]:
    lat = sorted(lat)
    return statistics.median(lat), lat[max(0, int(len(lat) * 0.99) - 1)]


def bench_stream(capture_path: Path, speed: float, trades: int, producer: Any) -> dict[str, float]:
    """Websocket trades -> TradeV1 -> sink. Latency: receipt (sink entry) -> Kafka ack callback."""
    ex = LocalExchange(LocalExchangeConfig(captures=(capture_path,), speed=speed))
    ex.start()
    forget_instances()
    latencies: list[float] = []

    def sink(msg: Message) -> None:
        t = time.perf_counter()  # the connector calls the sink as soon as a trade is received
        value = msg.model_dump_json()
        if producer is None:
            latencies.append((time.perf_counter() - t) * 1000)
            return
        # The bench needs the ack time: a delivery callback per record.
        producer.send_raw(BENCH_TOPIC, msg.key(), value,
                          on_delivery=lambda _err, _msg, t=t: latencies.append((time.perf_counter() - t) * 1000))

    cfg = VenueConfig(exchange_id="binance", symbols=("BTC/USDT",), base_url=ex.base_url)
    stream = TradeStream(cfg, "BTC/USDT", sink)

    async def go() -> float:
        t0 = time.perf_counter()
        await stream.run(asyncio.Event(), max_trades=trades)
        await stream.exchange.close()
        if producer is not None:
            producer.flush()
        return time.perf_counter() - t0

    try:
        elapsed = asyncio.run(go())
    finally:
        ex.stop()
    p50, p99 = _percentiles(latencies)
    return {"trades": float(len(latencies)), "msgs_per_s": len(latencies) / elapsed, "p50_ms": p50, "p99_ms": p99}


def bench_burst(capture_path: Path, n: int, producer: Any) -> float:
    """Recorded trades validated and produced as fast as possible (flush included): messages/s."""
    capture = load_capture(capture_path)
    now = int(time.time() * 1000)
    rows = [e.data for e in capture.of_kind("trade")]
    rows = (rows * (n // len(rows) + 1))[:n]
    t0 = time.perf_counter()
    for d in rows:
        msg = TradeV1(schema_version=1, event_time=int(d["T"]), available_time=int(d["T"]), ingest_time=now,
                      exchange="bench", symbol="BTC/USDT", trade_id=str(d["t"]), price=float(d["p"]),
                      amount=float(d["q"]), side="sell" if d["m"] else "buy")
        if producer is None:
            msg.model_dump_json()
        else:
            producer.send_raw(BENCH_TOPIC, msg.key(), msg.model_dump_json())  # validated on construction
    if producer is not None:
        producer.flush()
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capture", type=Path, default=DATA)
    ap.add_argument("--speed", type=float, default=50.0, help="replay speed multiple of the local exchange")
    ap.add_argument("--trades", type=int, default=3000, help="websocket trades to stream")
    ap.add_argument("--burst", type=int, default=20000, help="recorded trades produced back to back")
    ap.add_argument("--kafka", action="store_true", help="produce to the local Kafka broker (started if needed)")
    args = ap.parse_args()
    book_rate, parse_rate = bench_book(args.capture)
    print(f"order book: {book_rate:,.0f} diffs/s applied; json.loads floor {parse_rate:,.0f}/s; "
          f"ratio {book_rate / parse_rate:.3f}")
    noop_burst = bench_burst(args.capture, args.burst, None)
    if not args.kafka:
        res = bench_stream(args.capture, args.speed, args.trades, None)
        print(f"burst: in-process sink {noop_burst:,.0f} msg/s")
        print(f"ws -> in-process sink: {res['trades']:.0f} trades, {res['msgs_per_s']:,.0f} msg/s, "
              f"receipt->sink p50 {res['p50_ms']:.3f} ms, p99 {res['p99_ms']:.3f} ms")
        return
    from cryptolake.bus import Producer, ensure_topics
    from cryptolake.settings import get_settings
    from infra import broker

    settings = get_settings()
    started = broker.status(settings) is None
    info = broker.start(settings)
    print(f"broker: {info.bootstrap} ({'started for this run' if started else 'already running, reused'})")
    try:
        ensure_topics([BENCH_TOPIC], settings)
        with Producer(settings, client_id="bench-exchange", linger_ms=5) as producer:
            kafka_burst = bench_burst(args.capture, args.burst, producer)
            res = bench_stream(args.capture, args.speed, args.trades, producer)
    finally:
        if started:
            broker.stop(settings)
    print(f"burst: kafka {kafka_burst:,.0f} msg/s vs in-process sink {noop_burst:,.0f} msg/s; "
          f"ratio {kafka_burst / noop_burst:.3f}")
    print(f"ws -> kafka: {res['trades']:.0f} trades, {res['msgs_per_s']:,.0f} msg/s, "
          f"receipt->ack p50 {res['p50_ms']:.2f} ms, p99 {res['p99_ms']:.2f} ms")


if __name__ == "__main__":
    main()
