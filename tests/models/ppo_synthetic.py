"""A SYNTHETIC trending series for the PPO tests (never real market data)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.dataset import TrainingSet

TREND_FEATURES: tuple[str, ...] = ("log_ret_1", "momentum_8", "noise")


def trending_frame(n: int = 3000, seed: int = 0, drift: float = 0.003, vol: float = 0.003,
                   switch: float = 1 / 80) -> pd.DataFrame:
    """SYNTHETIC 30m bars whose log returns follow up/down trend regimes (``drift`` per bar) plus noise.

    Regimes switch with probability ``switch`` per bar; ``momentum_8`` is the sum of the last 8
    returns (up to the bar), so the trend is visible in the window; ``noise`` is pure noise. Each
    bar opens at the previous close.
    """
    rng = np.random.default_rng(seed)
    regime = np.empty(n)
    state = 1.0
    for i in range(n):
        if rng.random() < switch:
            state = -state
        regime[i] = state
    ret = drift * regime + vol * rng.standard_normal(n)
    close = 100.0 * np.exp(np.cumsum(ret))
    opens = np.r_[100.0, close[:-1]]
    ts = pd.date_range("2021-01-01", periods=n, freq="30min", tz="UTC")
    nxt = np.r_[ret[1:], np.nan]
    frame = pd.DataFrame({
        "exchange": "synthetic", "symbol": "TREND/USD", "timeframe": "30m", "ts": ts,
        "close_time": ts + pd.Timedelta(minutes=30), "open": opens, "close": close,
        "log_ret_1": ret, "momentum_8": pd.Series(ret).rolling(8, min_periods=1).sum().to_numpy(),
        "noise": rng.standard_normal(n), "next_log_return": nxt,
        "next_direction": (nxt > 0).astype(np.int32), "label_available_time": ts + pd.Timedelta(minutes=60),
    })
    return frame.iloc[:-1].reset_index(drop=True)  # the last bar has no label


def trending_dataset(frame: pd.DataFrame) -> TrainingSet:
    start = frame["ts"].min().to_pydatetime()
    end = (frame["ts"].max() + pd.Timedelta(minutes=30)).to_pydatetime()
    return TrainingSet(frame=frame, table_versions={}, symbols=("TREND/USD",), start=start, end=end, as_of=end,
                       feature_columns=TREND_FEATURES, extra={"source": "SYNTHETIC trending series"})
