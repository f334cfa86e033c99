"""Deterministic record ids: the same inputs give the same id on every machine and every re-run."""

from __future__ import annotations

import hashlib
import json

SIGNAL_ID_LENGTH = 16  # hex digits of sha256 kept: 64 bits, ample for one id per (model, bar)


def signal_id(model_version: str, exchange: str, symbol: str, timeframe: str, bar_time_ms: int) -> str:
    """The id of a model's signal about one bar (its key: exchange, symbol, timeframe, open time in epoch ms).

    Re-scoring the same bar with the same model gives the same id, which is what makes signals
    idempotent in Kafka (consumers skip an id they have seen) and in ``gold.signals`` (the MERGE key).
    The parts are JSON-encoded, so no separator inside a name can make two keys collide.
    """
    if isinstance(bar_time_ms, bool) or not isinstance(bar_time_ms, int):
        raise TypeError(f"bar_time_ms must be epoch milliseconds as int, got {bar_time_ms!r}")
    canonical = json.dumps([model_version, exchange, symbol, timeframe, bar_time_ms], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:SIGNAL_ID_LENGTH]
