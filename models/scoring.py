"""Score gold feature rows with a fitted model: the frame the streaming scorer and backtests publish."""

from __future__ import annotations

import pandas as pd

from models.base import Model

SCORE_COLUMNS: tuple[str, ...] = (
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
    ``probability >= model.threshold``. Probabilities are exactly ``model.predict``'s.
    """
    predicted = model.predict(features_df)
    out = pd.DataFrame(
        {
            "exchange": predicted["exchange"].astype(str),
            "symbol": predicted["symbol"].astype(str),
            "timeframe": predicted["timeframe"].astype(str),
            "bar_time": pd.to_datetime(predicted["ts"], utc=True),
            "probability": predicted["probability"].astype("float64"),
            "direction": (predicted["probability"] >= model.threshold).astype("int32"),
            "model_version": model.model_version,
        }
    )
    return out.reset_index(drop=True)
