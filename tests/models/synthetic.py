"""SYNTHETIC training frames with a planted, learnable signal (never real market data)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from models.dataset import TrainingSet

FEATURES: tuple[str, ...] = ("f0", "f1", "log_ret_1")


def synthetic_frame(n: int = 3000, seed: int = 0, symbols: tuple[str, ...] = ("SYN/USD",),
                    noise: float = 0.0) -> pd.DataFrame:
    """SYNTHETIC 30m bars: the next bar goes up iff f0 summed over the last 3 bars is positive.

    ``f1`` and ``log_ret_1`` are noise; ``noise`` flips that share of labels at random.
    """
    rng = np.random.default_rng(seed)
    parts = []
    for k, symbol in enumerate(symbols):
        ts = pd.date_range("2020-01-01", periods=n, freq="30min", tz="UTC")
        f0 = rng.standard_normal(n)
        signal = pd.Series(f0).rolling(3, min_periods=1).sum().to_numpy()
        up = (signal > 0).astype(np.int32)
        flip = rng.random(n) < noise
        up = np.where(flip, 1 - up, up)
        ret = np.where(up == 1, 1, -1) * (0.001 + 0.001 * rng.random(n))
        parts.append(pd.DataFrame({
            "exchange": "synthetic", "symbol": symbol, "timeframe": "30m", "ts": ts,
            "close_time": ts + pd.Timedelta(minutes=30), "f0": f0, "f1": rng.standard_normal(n) + k,
            "log_ret_1": np.r_[0.0, ret[:-1]], "next_log_return": ret, "next_direction": up,
            "label_available_time": ts + pd.Timedelta(minutes=60),
        }))
    return pd.concat(parts, ignore_index=True)


def synthetic_dataset(frame: pd.DataFrame) -> TrainingSet:
    start = frame["ts"].min().to_pydatetime()
    end = (frame["ts"].max() + pd.Timedelta(minutes=30)).to_pydatetime()
    return TrainingSet(frame=frame, table_versions={"gold.features": 1, "gold.labels": 1},
                       symbols=tuple(sorted(frame["symbol"].unique())), start=start, end=end, as_of=end,
                       feature_columns=FEATURES)


T0 = datetime(2020, 1, 1, tzinfo=UTC)
