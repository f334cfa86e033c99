"""Per-bar stage stamps, the ``ops.bar_stages`` contract shared by every stage that writes them.

A stamp says when one bar (exchange, symbol, timeframe, ts = the bar's open time) reached one stage;
:func:`stage_rows` makes them, a :class:`StageSink` takes them (Spark's idempotent append in
:mod:`spark_jobs.stages`, delta-rs in :mod:`trader.stages`, a list in tests).
"""

from __future__ import annotations

from typing import Protocol

import pandas as pd

from cryptolake.tables import BAR_STAGES


class StageSink(Protocol):
    """Where stage stamps go (``ops.bar_stages`` through delta-rs; a list in tests)."""

    def append(self, rows: pd.DataFrame) -> None: ...


def stage_rows(keys: pd.DataFrame, stage: str, stage_time: pd.Series | pd.Timestamp) -> pd.DataFrame:
    """``keys`` (exchange, symbol, timeframe, ts) stamped ``stage`` at ``stage_time`` (UTC), as BAR_STAGES rows."""
    out = keys[["exchange", "symbol", "timeframe", "ts"]].copy()
    out["ts"] = pd.to_datetime(out["ts"], utc=True)
    out["stage"] = stage
    out["stage_time"] = pd.to_datetime(stage_time, utc=True) if isinstance(stage_time, pd.Series) \
        else pd.Timestamp(stage_time).tz_convert("UTC") if pd.Timestamp(stage_time).tzinfo \
        else pd.Timestamp(stage_time).tz_localize("UTC")
    out["stage_time"] = out["stage_time"].dt.floor("us")  # Spark timestamps are microseconds
    out["bar_date"] = out["ts"].dt.date
    return out[list(BAR_STAGES.column_names)]
