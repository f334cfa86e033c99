"""Backtests: the same strategy, risk engine and paper venue as live, driven by a sorted event list.

:func:`run_backtest` is the entry point the pipeline calls. Bars and signals come in as
DataFrames (from ``silver.bars`` / the scorer, or a CSV), are validated into domain objects
(bad rows raise :class:`~cryptolake.errors.DataValidationError` naming the field and value),
merged in :func:`trader.engine.event_sort_key` order and fed to the engine.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import pandas as pd

from cryptolake.errors import DataValidationError
from cryptolake.logs import get_logger
from trader.config import TraderConfig, TraderSettings
from trader.domain import Bar, Signal, timeframe_delta
from trader.engine import Engine, Event, event_sort_key
from trader.execution.paper import PaperConfig, PaperExecutionClient
from trader.metrics import compute_metrics
from trader.portfolio import Portfolio
from trader.results import BacktestResult, RunResult
from trader.risk import RiskEngine
from trader.store import TradeStore
from trader.strategies.threshold import ThresholdStrategy

log = get_logger(__name__)


def build_engine(config: TraderConfig) -> Engine:
    """A fresh engine for ``config``: threshold strategy, risk engine, paper venue, empty books."""
    inst = config.instrument
    paper = PaperConfig(**{**config.paper.model_dump(), "fee_currency": config.quote_currency})
    return Engine(
        ThresholdStrategy(config.strategy, inst),
        RiskEngine(config.risk),
        PaperExecutionClient(paper, [inst]),
        Portfolio(config.initial_cash, [inst]),
        [inst],
    )


def _utc_times(values: pd.Series, name: str) -> list[datetime]:
    if pd.api.types.is_numeric_dtype(values):
        ts = pd.to_datetime(values, unit="ms", utc=True)
    else:
        ts = pd.to_datetime(values)
        if getattr(ts.dt, "tz", None) is None:
            raise DataValidationError(
                name,
                values.iloc[0] if len(values) else None,
                "timestamps must be UTC-aware (or epoch milliseconds)",
            )
        ts = ts.dt.tz_convert("UTC")
    if ts.isna().any():
        raise DataValidationError(name, values[ts.isna()].iloc[0], "unparseable timestamp")
    return [t.to_pydatetime() for t in ts]


def _require(df: pd.DataFrame, cols: Iterable[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataValidationError(f"{what}.columns", list(df.columns), f"missing required columns {missing}")


def bars_from_frame(df: pd.DataFrame, config: TraderConfig) -> list[Bar]:
    """Bars from a frame with ``open_time, open, high, low, close, volume`` (exchange/symbol/timeframe
    optional, defaulting to the config's). Rows for other instruments are dropped (logged)."""
    _require(df, ("open_time", "open", "high", "low", "close", "volume"), "bars")
    df = _only_instrument(df, config, "bars")
    delta = timeframe_delta(config.timeframe)
    times = _utc_times(df["open_time"], "open_time")
    cols = [df[c].astype(float).tolist() for c in ("open", "high", "low", "close", "volume")]
    return [
        Bar(config.exchange, config.symbol, config.timeframe, t, t + delta, o, h, lo, c, v)
        for t, o, h, lo, c, v in zip(times, *cols, strict=True)
    ]


def signals_from_frame(df: pd.DataFrame, config: TraderConfig) -> list[Signal]:
    """Signals from a frame with ``bar_time`` (or ``event_time``), ``probability``, ``available_time``
    and optional ``direction`` (default: sign of probability - 0.5) and ``model_version``."""
    if "bar_time" not in df.columns and "event_time" in df.columns:
        df = df.rename(columns={"event_time": "bar_time"})
    _require(df, ("bar_time", "probability", "available_time"), "signals")
    df = _only_instrument(df, config, "signals")
    bar_times = _utc_times(df["bar_time"], "bar_time")
    avail = _utc_times(df["available_time"], "available_time")
    probs = df["probability"].astype(float).tolist()
    if "direction" in df.columns:
        dirs = [int(d) for d in df["direction"]]
    else:
        dirs = [1 if p > 0.5 else (-1 if p < 0.5 else 0) for p in probs]
    versions = df["model_version"].astype(str).tolist() if "model_version" in df.columns else ["unversioned"] * len(df)
    return [
        Signal(config.exchange, config.symbol, config.timeframe, b, p, d, v, a)
        for b, p, d, v, a in zip(bar_times, probs, dirs, versions, avail, strict=True)
    ]


def _only_instrument(df: pd.DataFrame, config: TraderConfig, what: str) -> pd.DataFrame:
    mask = pd.Series(True, index=df.index)
    for col, want in (
        ("exchange", config.exchange),
        ("symbol", config.symbol),
        ("timeframe", config.timeframe),
    ):
        if col in df.columns:
            mask &= df[col] == want
    dropped = int((~mask).sum())
    if dropped:
        log.info("backtest.filtered", extra={"what": what, "dropped_other_instruments": dropped})
    return df[mask]


def merge_events(bars: Iterable[Bar], signals: Iterable[Signal]) -> list[Event]:
    """All events in the engine's processing order; duplicates are refused, not dropped."""
    events: list[Event] = sorted([*bars, *signals], key=event_sort_key)
    for prev, cur in itertools.pairwise(events):
        if event_sort_key(prev) == event_sort_key(cur):
            raise DataValidationError("event", event_sort_key(cur), "duplicate bar or signal")
    return events


class Backtester:
    """Runs the engine over a finite, sorted event list with a simulated clock."""

    def __init__(self, config: TraderConfig) -> None:
        self.config = config
        self.engine = build_engine(config)

    def run(self, events: Iterable[Event], *, progress_every: int = 10_000) -> Engine:
        """Process every event; logs progress every ``progress_every`` events."""
        self.engine.start()
        for i, event in enumerate(events, 1):
            self.engine.on_event(event)
            if progress_every and i % progress_every == 0:
                log.info("backtest.progress", extra={"events": i, "fills": len(self.engine.fills)})
        return self.engine


def metrics_for(engine: Engine, config: TraderConfig) -> dict[str, Any]:
    """Metrics of an engine's run (shared by backtest and live)."""
    from trader.results import equity_frame, fills_frame, trades_frame

    return compute_metrics(
        equity_frame(engine.equity),
        fills_frame(engine.fills),
        trades_frame(engine.portfolio.trades),
        initial_cash=config.initial_cash,
        timeframe=config.timeframe,
    )


def persist(store: TradeStore, run_id: str, engine: Engine, *, status: str) -> None:
    """Write what changed in ``engine`` since the last checkpoint."""
    last = engine.equity[-1].ts if engine.equity else None
    store.write_changes(
        run_id,
        engine.drain_changes(),
        engine.portfolio.positions.values(),
        last_event_time=last,
        status=status,
    )


def run_backtest(
    bars: pd.DataFrame,
    signals: pd.DataFrame,
    config: TraderConfig,
    *,
    run_id: str,
    store_url: str | None = None,
    persist_run: bool = True,
) -> BacktestResult:
    """Backtest ``config`` over ``bars`` and ``signals``; store the run under ``run_id`` (replacing it).

    ``store_url`` None uses the default store (:class:`TraderSettings`); ``persist_run=False``
    keeps the run in memory only.
    """
    events = merge_events(bars_from_frame(bars, config), signals_from_frame(signals, config))
    log.info("backtest.start", extra={"run_id": run_id, "events": len(events)})
    store = TradeStore(store_url or TraderSettings().resolved_store_url()) if persist_run else None
    if store:
        store.begin_run(run_id, "backtest", config.model_dump(mode="json"))
    engine = Backtester(config).run(events)
    metrics = metrics_for(engine, config)
    if store:
        persist(store, run_id, engine, status="finished")
    result = RunResult.from_engine(run_id, engine, metrics, {"events": len(events)})
    log.info(
        "backtest.done",
        extra={
            "run_id": run_id,
            "fills": len(engine.fills),
            "final_equity": round(metrics["final_equity"], 2),
        },
    )
    return BacktestResult(**vars(result))
