"""Candlestick-pattern gold columns: TA-Lib's pattern functions per series, each value from bars up to t.

TA-Lib's ``CDL*`` functions look back a few bars and never ahead, so the value at bar t is a
function of bars ``<= t``: appending later bars never changes an earlier value (tested). Output is
keyed like gold.features (exchange, symbol, timeframe, ts) so it joins one to one; values are
TA-Lib's -100 / 0 / +100 (bearish / none / bullish; +-80 and +-200 for weak or confirmed
variants) divided by 100. Only ``is_valid``
bars are used when the column is present; bars are not modified.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from cryptolake.errors import DataValidationError

# A representative set: single-bar, two-bar and three-bar patterns.
PATTERNS: tuple[str, ...] = ("CDLDOJI", "CDLHAMMER", "CDLSHOOTINGSTAR", "CDLENGULFING", "CDLHARAMI",
                             "CDLMORNINGSTAR", "CDLEVENINGSTAR", "CDL3WHITESOLDIERS", "CDL3BLACKCROWS")
PATTERN_COLUMNS: tuple[str, ...] = tuple(f"cdl_{p[3:].lower()}" for p in PATTERNS)
_KEYS = ("exchange", "symbol", "timeframe")


def pattern_features(bars: pd.DataFrame, patterns: Sequence[str] = PATTERNS) -> pd.DataFrame:
    """Pattern columns per bar of silver-bars-shaped rows (open_time, OHLC), keyed by ``ts`` = open_time."""
    import talib

    missing = [c for c in (*_KEYS, "open_time", "open", "high", "low", "close") if c not in bars.columns]
    if missing:
        raise DataValidationError("bars", missing, "missing columns for candlestick patterns")
    unknown = [p for p in patterns if not hasattr(talib, p)]
    if unknown:
        raise DataValidationError("patterns", unknown, "not TA-Lib pattern functions")
    frame = bars[bars["is_valid"].astype(bool)] if "is_valid" in bars.columns else bars
    parts = []
    for _, g in frame.sort_values([*_KEYS, "open_time"], kind="mergesort").groupby(list(_KEYS), sort=True):
        ohlc = [g[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close")]
        out = g[list(_KEYS)].copy()
        out["ts"] = pd.to_datetime(g["open_time"], utc=True)
        for name in patterns:
            out[f"cdl_{name[3:].lower()}"] = getattr(talib, name)(*ohlc).astype(np.float64) / 100.0
        parts.append(out)
    if not parts:
        return pd.DataFrame(columns=[*_KEYS, "ts", *(f"cdl_{p[3:].lower()}" for p in patterns)])
    return pd.concat(parts, ignore_index=True)
