"""Seeded fuzz cases for the landing: malformed payloads, each with the field its reason must name.

Valid payloads come from REAL candles (nautilus_trader 1m BTC bars); the trade and ticker payloads
built from them are SYNTHETIC (a trade at the candle's close, a ticker around it). Each malformed case
makes one change to a valid payload: random bytes, truncated JSON, a wrong type, a missing or an extra
field, an oversized value, an out-of-range time.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from cryptolake.schemas import MAX_NAME_CHARS, Message, OhlcvV1, TickerV1, TradeV1

KINDS = ("random_bytes", "truncated_json", "wrong_type", "missing_field", "extra_field", "oversized",
         "out_of_range_time", "bad_schema_version")
TIMES = ("event_time", "available_time", "ingest_time")
NUMERIC = {OhlcvV1: ("open", "high", "low", "close", "volume"), TradeV1: ("price", "amount"),
           TickerV1: ("bid", "ask", "last", "base_volume")}
REQUIRED = {OhlcvV1: ("exchange", "symbol", "timeframe", "open", "high", "low", "close", "volume", *TIMES),
            TradeV1: ("exchange", "symbol", "trade_id", "price", "amount", *TIMES),
            TickerV1: ("exchange", "symbol", *TIMES)}


@dataclass(frozen=True)
class Case:
    key: str
    value: bytes
    field: str | None  # the field the quarantine reason must name; None: the payload is valid
    kind: str


def valid_payload(model: type[Message], candle: OhlcvV1, i: int) -> dict[str, Any]:
    """A valid payload of ``model`` around a real candle (trade and ticker: SYNTHETIC)."""
    base = json.loads(candle.model_dump_json())
    if model is OhlcvV1:
        return base
    times = {k: base[k] for k in ("schema_version", *TIMES)}
    times["available_time"] = times["ingest_time"] = base["available_time"]
    if model is TradeV1:
        return {**times, "exchange": candle.exchange, "symbol": candle.symbol, "trade_id": f"synthetic-{i}",
                "price": candle.close, "amount": 0.01 + (i % 7) / 100, "side": "buy" if i % 2 else "sell"}
    return {**times, "exchange": candle.exchange, "symbol": candle.symbol, "bid": candle.close - 0.5,
            "ask": candle.close + 0.5, "last": candle.close, "base_volume": candle.volume}


def malformed(model: type[Message], payload: dict[str, Any], rng: random.Random, kind: str) -> tuple[bytes, str]:
    """One malformed variant of a valid ``payload`` and the field its reason must name."""
    text = json.dumps(payload)
    if kind == "random_bytes":
        return rng.randbytes(rng.randint(0, 300)), "payload"
    if kind == "truncated_json":
        return text[: rng.randint(1, len(text) - 1)].encode(), "payload"
    bad = dict(payload)
    if kind == "wrong_type":
        name = rng.choice([*NUMERIC[model], "exchange", "symbol", *TIMES])
        if name in ("exchange", "symbol"):
            bad[name] = rng.choice([[1, 2], {"a": 1}, 12345])
        else:
            bad[name] = rng.choice(["abc", [1.0], {"v": 1}, "1e3x"])
        return json.dumps(bad).encode(), name
    if kind == "missing_field":
        name = rng.choice(REQUIRED[model])
        del bad[name]
        return json.dumps(bad).encode(), name
    if kind == "extra_field":
        name = f"zz_extra_{rng.randint(0, 10**6)}"
        bad[name] = rng.choice([1, "x", None, [1]])
        return json.dumps(bad).encode(), name
    if kind == "oversized":
        name = rng.choice(["exchange", "symbol"])
        longest = 100_000 if rng.random() < 0.1 else 2_000  # a few very long ones, the Kafka topic stays small
        bad[name] = "X" * rng.randint(MAX_NAME_CHARS + 1, longest)
        return json.dumps(bad).encode(), name
    if kind == "out_of_range_time":
        name = rng.choice(TIMES)
        bad[name] = rng.choice([rng.randint(0, 10**12), rng.randint(5 * 10**12, 10**18), -rng.randint(1, 10**9),
                                int(payload[name]) // 1000])  # the last: seconds instead of milliseconds
        return json.dumps(bad).encode(), name
    bad["schema_version"] = rng.choice([0, 3, 99])
    return json.dumps(bad).encode(), "schema_version"


def cases(model: type[Message], candles: list[OhlcvV1], n_bad: int, n_good: int, seed: int) -> list[Case]:
    """``n_good`` valid and ``n_bad`` malformed cases of ``model``, shuffled (seeded)."""
    rng = random.Random(seed)
    out = [Case(f"fuzz:{model.__name__}:good:{i}", json.dumps(valid_payload(model, candles[i % len(candles)], i))
                .encode(), None, "valid") for i in range(n_good)]
    for i in range(n_bad):
        kind = KINDS[i % len(KINDS)]
        value, field = malformed(model, valid_payload(model, candles[i % len(candles)], i), rng, kind)
        out.append(Case(f"fuzz:{model.__name__}:bad:{i}", value, field, kind))
    rng.shuffle(out)
    return out
