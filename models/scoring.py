"""Score gold feature rows with a fitted model: the frame the streaming scorer and backtests publish."""

from __future__ import annotations

import pandas as pd

from cryptolake.ids import signal_id
from cryptolake.types import to_ms
from models.base import Model

SCORE_COLUMNS: tuple[str, ...] = (
    "signal_id",
    "exchange",
    "symbol",
    "timeframe",
    "bar_time",
    "probability",
    "direction",
    "model_version",
)


def score_frame(model: Model, features_df: pd.DataFrame) -> pd.DataFrame:
    """Probabilities and directions for every bar of ``features_df`` that ends a complete window.

    ``bar_time`` is the bar's ``ts`` (open time, the gold key); ``direction`` is 1 when
    ``probability >= model.threshold``; ``signal_id`` is :func:`cryptolake.ids.signal_id` of the
    model version and the bar key. Probabilities are exactly ``model.predict``'s.
    """
    predicted = model.predict(features_df)
    version = model.model_version
    out = pd.DataFrame(
        {
            "exchange": predicted["exchange"].astype(str),
            "symbol": predicted["symbol"].astype(str),
            "timeframe": predicted["timeframe"].astype(str),
            "bar_time": pd.to_datetime(predicted["ts"], utc=True),
            "probability": predicted["probability"].astype("float64"),
            "direction": (predicted["probability"] >= model.threshold).astype("int32"),
            "model_version": version,
        }
    )
    ids = [
        signal_id(version, ex, sym, tf, to_ms(bar.to_pydatetime()))
        for ex, sym, tf, bar in zip(out["exchange"], out["symbol"], out["timeframe"], out["bar_time"], strict=True)
    ]
    out.insert(0, "signal_id", pd.Series(ids, index=out.index, dtype=object))
    return out.reset_index(drop=True)
