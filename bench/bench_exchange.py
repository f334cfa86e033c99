"""Benchmark: local-exchange websocket trades -> validated messages -> Kafka (or an in-process sink),
with p50/p99 latency from websocket receipt to produce acknowledgment, and the order-book update rate.

Peers measured in the same run: (1) raw ``json.loads`` of the same recorded messages (the floor
of any consumer) for the book rate; (2) for throughput, the no-op sink vs Kafka.

    .venv/bin/python bench/bench_exchange.py --help
    .venv/bin/python bench/bench_exchange.py --speed 50 --trades 3000            # in-process sink
    .venv/bin/python bench/bench_exchange.py --speed 50 --trades 3000 --kafka    # needs `cryptolake stack up`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptolake.schemas import Message  # noqa: E402
from ingest.exchange.connector import TradeStream, VenueConfig, forget_instances  # noqa: E402
from ingest.exchange.orderbook import BookSynchronizer  # noqa: E402
from ingest.localexchange.data import load_capture  # noqa: E402
from ingest.localexchange.server import LocalExchange, LocalExchangeConfig  # noqa: E402

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


def bench_stream(capture_path: Path, speed: float, trades: int, kafka: bool) -> dict[str, float]:
    ex = LocalExchange(LocalExchangeConfig(captures=(capture_path,), speed=speed))
    ex.start()
    forget_instances()
    latencies: list[float] = []
    producer = None
    if kafka:
        from cryptolake.bus import Producer
        producer = Producer(linger_ms=5)

    def sink(msg: Message) -> None:  # receipt -> produce ack (Kafka: future.get(); else the call itself)
        t = time.perf_counter()
        if producer is not None:
            producer._producer.send(msg.TOPIC, key=msg.key(), value=msg.model_dump_json()).get(timeout=30)
        else:
            msg.model_dump_json()
        latencies.append((time.perf_counter() - t) * 1000 + (time.time() * 1000 - msg.ingest_time))

    cfg = VenueConfig(exchange_id="binance", symbols=("BTC/USDT",), base_url=ex.base_url)
    stream = TradeStream(cfg, "BTC/USDT", sink)

    async def go() -> float:
        t0 = time.perf_counter()
        await stream.run(asyncio.Event(), max_trades=trades)
        await stream.exchange.close()
        return time.perf_counter() - t0

    try:
        elapsed = asyncio.run(go())
    finally:
        ex.stop()
        if producer is not None:
            producer.close()
    lat = sorted(latencies)
    return {"trades": len(lat), "msgs_per_s": len(lat) / elapsed, "p50_ms": statistics.median(lat),
            "p99_ms": lat[int(len(lat) * 0.99) - 1]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capture", type=Path, default=DATA)
    ap.add_argument("--speed", type=float, default=50.0, help="replay speed multiple of the local exchange")
    ap.add_argument("--trades", type=int, default=3000)
    ap.add_argument("--kafka", action="store_true", help="produce to the local Kafka broker")
    args = ap.parse_args()
    book_rate, parse_rate = bench_book(args.capture)
    print(f"order book: {book_rate:,.0f} diffs/s applied; json.loads floor {parse_rate:,.0f}/s; "
          f"ratio {book_rate / parse_rate:.3f}")
    res = bench_stream(args.capture, args.speed, args.trades, args.kafka)
    print(f"ws -> {'kafka' if args.kafka else 'in-process sink'}: {res['trades']:.0f} trades, "
          f"{res['msgs_per_s']:,.0f} msg/s, receipt->ack p50 {res['p50_ms']:.2f} ms, p99 {res['p99_ms']:.2f} ms")


if __name__ == "__main__":
    main()
