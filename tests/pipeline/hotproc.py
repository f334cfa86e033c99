"""Helpers of the hot-path stream tests: a tiny LSTM on real bars, silver.bars rows written with delta-rs.

The bars are REAL: the nautilus_trader 1-minute BTC perpetual candles in ../shared/data (see
:mod:`tests.pipeline.streamproc`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cryptolake.settings import MarketSettings, Settings
from cryptolake.tables import SILVER_BARS
from models.base import Model
from models.dataset import TrainingSet
from models.lstm import LstmConfig, LstmModel
from spark_jobs.gold.features import SERIES_KEYS, features_pandas
from spark_jobs.silver.bars import flag_series

_MARKET = MarketSettings()
JUMP, FLAT = _MARKET.jump_threshold, _MARKET.max_flat_bars  # the defaults a `stream hot` child runs with
CONFIG = LstmConfig(window=8, hidden_size=8, max_epochs=2, patience=1, samples_per_epoch=256, batch_size=128,
                    valid_fraction=0.2, test_fraction=0.2, seed=11)


def batch_gold(bars: pd.DataFrame) -> pd.DataFrame:
    """What the batch jobs compute per series: silver's flags over the whole series, gold over its valid bars."""
    out = []
    for _, series in bars.groupby(list(SERIES_KEYS), sort=False):
        flagged = flag_series(series.copy(), jump_threshold=JUMP, max_flat_bars=FLAT)
        out.append(features_pandas(flagged[flagged["is_valid"]]))
    return pd.concat(out, ignore_index=True)


def train_tiny(bars: pd.DataFrame) -> Model:
    """A tiny LSTM on one series' batch features and next-bar labels (its test segment ends the bars)."""
    features = batch_gold(bars)
    close = bars.set_index("open_time")["close"]
    ret = np.log(close.shift(-1) / close)
    labels = pd.DataFrame({"ts": close.index, "next_log_return": ret.to_numpy(),
                           "next_direction": (ret > 0).astype("int32").to_numpy(),
                           "label_available_time": close.index + pd.Timedelta(minutes=2)}).iloc[:-1]
    frame = features.drop(columns=["bar_date"]).merge(labels, on="ts")
    start, end = frame["ts"].min().to_pydatetime(), frame["ts"].max().to_pydatetime()
    dataset = TrainingSet(frame=frame, table_versions={}, symbols=(str(bars["symbol"].iloc[0]),), start=start,
                          end=end, as_of=end)
    model = LstmModel(CONFIG)
    model.fit(dataset)
    return model


def write_silver(settings: Settings, bars: pd.DataFrame) -> int:
    """Append ``bars`` (``bars_frame`` rows) to ``silver.bars`` with silver's flags, as the silver job would."""
    from deltalake import write_deltalake

    from trader.export import to_arrow

    parts = []
    for _, series in bars.groupby(list(SERIES_KEYS), sort=False):
        flagged = flag_series(series.copy(), jump_threshold=JUMP, max_flat_bars=FLAT)
        step = flagged["open_time"].diff()
        flagged["gap_before"] = step.gt(flagged["close_time"] - flagged["open_time"]).fillna(False)
        flagged["missing_bars_before"] = 0
        flagged["ingest_time"] = flagged["close_time"]
        flagged["duplicates"] = 0
        flagged["bar_date"] = flagged["open_time"].dt.date
        parts.append(flagged)
    rows = pd.concat(parts, ignore_index=True)
    write_deltalake(SILVER_BARS.path(settings), to_arrow(rows, SILVER_BARS), mode="append",
                    partition_by=list(SILVER_BARS.partition_by))
    return len(rows)
