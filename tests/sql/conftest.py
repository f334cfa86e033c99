"""SQL test fixtures: a hand-made gold lake written with delta-rs in a temporary folder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from cryptolake.settings import Settings
from cryptolake.tables import FEATURE_COLUMNS
from tests.conftest import settings_in
from tests.models.lake_fixture import write_gold

T0 = datetime(2020, 1, 1, tzinfo=UTC)
BAR = timedelta(minutes=30)


def hand_made_gold() -> tuple[pd.DataFrame, pd.DataFrame]:
    """SYNTHETIC gold rows (hand-made values, not market data) with one deliberately late label.

    Features: BTC/USD at 00:00, 00:30, 01:00, 01:30; ETH/USD at 00:00, 00:30; XRP/USD at 00:00.
    Labels exist for every feature row except BTC 01:30 (its next bar has not closed). Each label
    is available at the next bar's close, except ETH 00:30 whose label arrives late, at 05:00.
    """
    bars = [("BTC/USD", 0), ("BTC/USD", 1), ("BTC/USD", 2), ("BTC/USD", 3),
            ("ETH/USD", 0), ("ETH/USD", 1), ("XRP/USD", 0)]
    rows = []
    for i, (symbol, k) in enumerate(bars):
        ts = T0 + k * BAR
        rows.append({
            "exchange": "handmade", "symbol": symbol, "timeframe": "30m", "ts": ts, "close_time": ts + BAR,
            "close": 100.0 + i, **{c: float(i) + j / 100 for j, c in enumerate(FEATURE_COLUMNS)},
            "anomaly_score": 0.0, "anomaly_flag": False, "bar_date": ts.date(),
        })
    features = pd.DataFrame(rows)
    labels = features[["exchange", "symbol", "timeframe", "ts", "close_time", "bar_date"]].copy()
    labels["next_log_return"] = [0.01, -0.02, 0.03, 0.0, 0.02, -0.01, 0.05]
    labels["next_direction"] = (labels["next_log_return"] > 0).astype("int32")
    labels["label_available_time"] = labels["close_time"] + BAR
    labels.loc[(labels["symbol"] == "ETH/USD") & (labels["ts"] == T0 + BAR), "label_available_time"] = (
        T0 + timedelta(hours=5)
    )
    labels = labels[~((labels["symbol"] == "BTC/USD") & (labels["ts"] == T0 + 3 * BAR))]
    return features, labels.reset_index(drop=True)


@pytest.fixture
def hand_lake(tmp_path: Path) -> Settings:
    settings = settings_in(tmp_path)
    features, labels = hand_made_gold()
    write_gold(settings, features, labels)
    return settings
