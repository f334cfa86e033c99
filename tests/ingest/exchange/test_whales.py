"""Whale detection on the real recorded BTCUSDT trades."""

from __future__ import annotations

import numpy as np

from ingest.exchange.whales import WhaleConfig, WhaleDetector


def test_rolling_quantile_uses_only_earlier_trades(capture):
    trades = [e.data for e in capture.of_kind("trade")]
    det = WhaleDetector(WhaleConfig(quantile=0.99, window=1000, min_history=500))
    notionals = [float(t["p"]) * float(t["q"]) for t in trades]
    flagged = [i for i, t in enumerate(trades) if det.check(float(t["p"]), float(t["q"]))[0]]
    assert flagged and all(i >= 500 for i in flagged)
    i = flagged[0]
    assert notionals[i] > np.quantile(notionals[max(0, i - 1000):i], 0.99)
    assert 0.001 < len(flagged) / len(trades) < 0.05


def test_absolute_floor_applies_from_the_first_trade():
    det = WhaleDetector(WhaleConfig(absolute_notional=100_000, quantile=None))
    assert det.check(60_000, 2.0) == (True, 120_000.0, 100_000)
    assert det.check(60_000, 1.0)[0] is False
