"""Model health (the champion and the drift of its signals) and the market regime with the selected strategy.

Drift is the population stability index (PSI) of the champion's published probabilities
(``gold.signals``): its first ``window`` signals from its out-of-sample start (the reference) against its
last ``window`` (now), over ten equal bins of [0, 1]. PSI < 0.1 is ``stable``, < 0.25 ``moderate``,
else ``drifted`` (the usual credit-scoring reading of PSI). The regime is :func:`trader.regimes.regime_at`
on silver's last valid bars; the selected strategy is what the selector (:mod:`trader.strategies.selector`)
chooses, with its switches over those bars as the timeline.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from cryptolake.errors import DataValidationError, ModelNotFoundError
from cryptolake.settings import Settings
from models.registry import ModelRegistry
from trader.domain import Instrument
from trader.regimes import regime_at
from trader.strategies.selector import SelectorConfig, trace_choices

PSI_BINS = 10
PSI_MODERATE, PSI_DRIFTED = 0.1, 0.25


def psi(reference: np.ndarray, current: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population stability index of ``current`` against ``reference`` (probabilities in [0, 1])."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    ref = np.histogram(np.clip(reference, 0, 1), edges)[0] / max(len(reference), 1)
    cur = np.histogram(np.clip(current, 0, 1), edges)[0] / max(len(current), 1)
    ref, cur = np.maximum(ref, 1e-4), np.maximum(cur, 1e-4)  # an empty bin would make the log infinite
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _query(settings: Settings, table: str, sql: str, params: dict[str, Any]) -> pd.DataFrame | None:
    """``sql`` over the lake, or None when ``table`` is not in it yet."""
    from cryptolake import duck

    con = duck.connect(settings)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if table not in tables:
            return None
        frame: pd.DataFrame = con.execute(sql, params).df()
        return frame
    finally:
        con.close()


def _entry(e: Any) -> dict[str, Any]:
    may, why = e.may_trade
    return {"version": e.version, "kind": e.kind, "trained_at": e.trained_at, "oos_start": e.oos_start,
            "promoted": e.promoted, "gate_passed": may, "gate_reason": why}


def model_health(settings: Settings, now: datetime, window: int) -> dict[str, Any]:
    """The registry's versions, the champion at ``now`` and the drift of its signals."""
    registry = ModelRegistry.for_settings(settings)
    versions = registry.versions() if registry.root.exists() else []
    try:
        champion = registry.champion(now) if versions else None
    except ModelNotFoundError:
        champion = None
    drift: dict[str, Any] = {"status": "unknown", "psi": None, "reference": 0, "current": 0, "window": window,
                             "detail": "no champion"}
    if champion is not None:
        frame = _query(settings, "gold_signals", "SELECT bar_time, probability FROM gold_signals "
                       "WHERE model_version = $v AND bar_time >= $start ORDER BY bar_time",
                       {"v": champion.version, "start": champion.oos_start})
        probs = np.array([], dtype=float) if frame is None else frame["probability"].to_numpy(dtype=float)
        probs = probs[np.isfinite(probs)]
        if len(probs) < 2 * window:
            drift["detail"] = f"{len(probs)} signals of {champion.version}; drift needs {2 * window}"
        else:
            value = psi(probs[:window], probs[-window:])
            status = "stable" if value < PSI_MODERATE else "moderate" if value < PSI_DRIFTED else "drifted"
            since = f"{champion.oos_start:%Y-%m-%d}"
            drift = {"status": status, "psi": round(value, 6), "reference": window, "current": window,
                     "window": window, "detail": f"PSI of the first {window} signals since {since} against the last "
                                                 f"{window}"}
    return {"champion": None if champion is None else _entry(champion), "versions": [_entry(e) for e in versions],
            "drift": drift}


BARS_SQL = ("SELECT open_time, open, high, low, close, volume FROM silver_bars WHERE exchange = $exchange "
            "AND symbol = $symbol AND timeframe = $timeframe AND is_valid ORDER BY open_time DESC LIMIT $n")


def current_regime(settings: Settings, exchange: str, symbol: str, timeframe: str, bars: int) -> dict[str, Any]:
    """The regime at the last valid silver bar, the selector's choice and its switches over ``bars`` bars."""
    frame = _query(settings, "silver_bars", BARS_SQL, {"exchange": exchange, "symbol": symbol,
                                                       "timeframe": timeframe, "n": bars})
    cfg = SelectorConfig()
    if frame is None or len(frame) < cfg.regime.lookback + 1:
        have = 0 if frame is None else len(frame)
        raise DataValidationError("symbol", symbol, f"{have} valid {timeframe} bars of {exchange} in silver.bars; "
                                  f"the regime needs {cfg.regime.lookback + 1}")
    frame = frame.iloc[::-1].reset_index(drop=True)
    frame["open_time"] = pd.to_datetime(frame["open_time"], utc=True)
    h, lo, c = (frame[k].to_numpy(dtype=float) for k in ("high", "low", "close"))
    regime, reason = regime_at(h, lo, c, len(frame) - 1, cfg.regime)
    choices = trace_choices(cfg, frame, Instrument(exchange, symbol))
    selected = str(choices["chosen"].iloc[-1]) if len(choices) else "cash"
    timeline = [{"ts": r.ts, "regime": r.regime, "chosen": r.chosen, "previous": r.previous, "reason": r.reason}
                for r in choices.itertuples(index=False)]
    return {"exchange": exchange, "symbol": symbol, "timeframe": timeframe,
            "as_of": frame["open_time"].iloc[-1].to_pydatetime(), "regime": regime, "reason": reason,
            "preferred": cfg.by_regime[regime], "selected": selected, "by_regime": dict(cfg.by_regime),
            "bars": len(frame), "timeline": timeline}

