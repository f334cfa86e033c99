"""Shared by the ingest tests: the real Binance BTCUSDT order-book capture and an independent reference book."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ingest.localexchange.data import load_capture

BINANCE_CAPTURE = "market/orderbook/hftbacktest/btcusdt_20240808.gz"  # relative to the shared data folder


@pytest.fixture(scope="module")
def capture_path(shared_data: Path) -> Path:
    return shared_data / BINANCE_CAPTURE


@pytest.fixture(scope="module")
def capture(capture_path: Path) -> Any:
    return load_capture(capture_path)


def reference_book(capture: Any, nonce: int) -> tuple[int, dict[float, float], dict[float, float]]:
    """Snapshot + recorded diffs up to ``nonce``, applied independently of the code under test.

    Returns ``(last update id applied, bids, asks)`` with float price -> quantity.
    """
    bids = {float(p): float(q) for p, q in capture.snapshot["bids"]}
    asks = {float(p): float(q) for p, q in capture.snapshot["asks"]}
    last = int(capture.snapshot["lastUpdateId"])
    for e in capture.of_kind("depth"):
        if e.data["u"] <= last:
            continue
        if e.data["u"] > nonce:
            break
        for side, key in ((bids, "b"), (asks, "a")):
            for p, q in e.data[key]:
                if float(q) == 0:
                    side.pop(float(p), None)
                else:
                    side[float(p)] = float(q)
        last = e.data["u"]
    return last, bids, asks
