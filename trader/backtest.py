"""Backtests: the same strategy, risk engine and paper venue as live, driven by a sorted event list.

:func:`run_backtest` is the entry point the pipeline calls. Bars and signals come in as
DataFrames (from ``silver.bars`` / the scorer, or a CSV), are validated into domain objects
(bad rows raise :class:`~cryptolake.errors.DataValidationError` naming the field and value),
merged in :func:`trader.engine.event_sort_key` order and fed to the engine.
"""

from __future__ import annotations

import itertools
from collections import Counter
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
from trader.filters import EventFilter, Skip
from trader.metrics import compute_metrics
from trader.portfolio import Portfolio
from trader.results import BacktestResult, RunResult
from trader.risk import RiskEngine
from trader.store import TradeStore
from trader.strategies.threshold import ThresholdStrategy
from trader.strategy import InstrumentRouter, Strategy

log = get_logger(__name__)


def build_engine(config: TraderConfig) -> Engine:
    """A fresh engine for ``config``: one account, one threshold strategy per symbol, risk engine, paper venue."""
    instruments = config.instruments
    paper = PaperConfig(**{**config.paper.model_dump(), "fee_currency": config.quote_currency})
    strategy: Strategy
    if len(instruments) == 1:
        strategy = ThresholdStrategy(config.strategy, instruments[0])
    else:
        prefix = config.strategy.order_id_prefix
        strategy = InstrumentRouter(
            {
                inst.key: ThresholdStrategy(
                    config.strategy,
                    inst,
                    n_instruments=len(instruments),
                    name=f"{prefix}_{''.join(ch for ch in inst.symbol if ch.isalnum())}",
                )
                for inst in instruments
            }
        )
    return Engine(
        strategy,
        RiskEngine(config.risk),
        PaperExecutionClient(paper, instruments),
        Portfolio(config.initial_cash, instruments),
        instruments,
    )


def _utc_series(values: pd.Series, name: str) -> pd.Series:
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
    return ts


def _pydt(ts: pd.Series) -> list[datetime]:
    return [t.to_pydatetime() for t in ts]


def _require(df: pd.DataFrame, cols: Iterable[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataValidationError(f"{what}.columns", list(df.columns), f"missing required columns {missing}")


def _symbols(df: pd.DataFrame, config: TraderConfig, what: str) -> list[str]:
    if "symbol" in df.columns:
        return df["symbol"].astype(str).tolist()
    if len(config.symbols) > 1:
        raise DataValidationError(
            f"{what}.columns", list(df.columns), f"a 'symbol' column is required to trade {list(config.symbols)}"
        )
    return [config.symbols[0]] * len(df)


def _instrument_mask(df: pd.DataFrame, config: TraderConfig) -> pd.Series:
    mask = pd.Series(True, index=df.index)
    for col, want in (("exchange", config.exchange), ("timeframe", config.timeframe)):
        if col in df.columns:
            mask &= df[col] == want
    if "symbol" in df.columns:
        mask &= df["symbol"].isin(config.symbols)
    return mask


def _apply(df: pd.DataFrame, masks: list[tuple[Skip, pd.Series]], counts: Counter[str], what: str) -> pd.DataFrame:
    """Keep rows passing every mask, counting the rows each mask removes first (same counters as live)."""
    keep = pd.Series(True, index=df.index)
    for reason, mask in masks:
        dropped = keep & ~mask
        if int(dropped.sum()):
            counts[str(reason)] += int(dropped.sum())
        keep &= mask
    if counts:
        log.info("backtest.filtered", extra={"what": what, **dict(counts)})
    return df[keep]


def bars_from_frame(
    df: pd.DataFrame, config: TraderConfig, flt: EventFilter | None = None, counts: Counter[str] | None = None
) -> list[Bar]:
    """Bars from a frame with ``open_time, open, high, low, close, volume`` and ``symbol`` (optional
    for a one-symbol config; exchange/timeframe optional, defaulting to the config's).
    Rows outside the run (other instruments, outside ``flt``'s window) are dropped and counted."""
    _require(df, ("open_time", "open", "high", "low", "close", "volume"), "bars")
    df = df.reset_index(drop=True)  # rows are selected by label below: labels must be unique
    flt = flt or EventFilter.for_run(config)
    counts = counts if counts is not None else Counter()
    delta = timeframe_delta(config.timeframe)
    open_time = _utc_series(df["open_time"], "open_time")
    masks = [(Skip.OTHER_INSTRUMENT, _instrument_mask(df, config))]
    if flt.start_time is not None:
        masks.append((Skip.BEFORE_START, open_time >= flt.start_time))
    end = flt.end_available_time
    if end is not None:
        masks.append((Skip.AFTER_END, open_time + delta <= end))
    kept = _apply(df, masks, counts, "bars")
    times = _pydt(open_time[kept.index])
    syms = _symbols(kept, config, "bars")
    cols = [kept[c].astype(float).tolist() for c in ("open", "high", "low", "close", "volume")]
    ex, tf = config.exchange, config.timeframe
    return [
        Bar(ex, sym, tf, t, t + delta, o, h, lo, c, v)
        for sym, t, o, h, lo, c, v in zip(syms, times, *cols, strict=True)
    ]


def signals_from_frame(
    df: pd.DataFrame, config: TraderConfig, flt: EventFilter | None = None, counts: Counter[str] | None = None
) -> list[Signal]:
    """Signals from a frame with ``bar_time`` (or ``event_time``), ``probability``, ``available_time``,
    ``symbol`` (optional for one symbol) and optional ``direction`` (default: sign of probability - 0.5),
    ``model_version`` and ``signal_id``. Rows outside the run are dropped and counted, as in live."""
    if "bar_time" not in df.columns and "event_time" in df.columns:
        df = df.rename(columns={"event_time": "bar_time"})
    _require(df, ("bar_time", "probability", "available_time"), "signals")
    df = df.reset_index(drop=True)  # rows are selected by label below: labels must be unique
    flt = flt or EventFilter.for_run(config)
    counts = counts if counts is not None else Counter()
    bar_time = _utc_series(df["bar_time"], "bar_time")
    available = _utc_series(df["available_time"], "available_time")
    versions = df["model_version"].astype(str) if "model_version" in df.columns else None
    masks = [(Skip.OTHER_INSTRUMENT, _instrument_mask(df, config))]
    if flt.model_version is not None:
        if versions is None:
            raise DataValidationError(
                "signals.columns",
                list(df.columns),
                f"a 'model_version' column is needed to select {flt.model_version!r}",
            )
        masks.append((Skip.OTHER_MODEL_VERSION, versions == flt.model_version))
    if flt.start_time is not None:
        masks.append((Skip.BEFORE_START, bar_time >= flt.start_time))
    end = flt.end_available_time
    if end is not None:
        masks.append((Skip.AFTER_END, available <= end))
    kept = _apply(df, masks, counts, "signals")
    bar_times = _pydt(bar_time[kept.index])
    avail = _pydt(available[kept.index])
    syms = _symbols(kept, config, "signals")
    probs = kept["probability"].astype(float).tolist()
    if "direction" in kept.columns:
        dirs = [int(d) for d in kept["direction"]]
    else:
        dirs = [1 if p > 0.5 else (-1 if p < 0.5 else 0) for p in probs]
    vers = versions[kept.index].tolist() if versions is not None else ["unversioned"] * len(kept)
    ids = kept["signal_id"].astype(str).tolist() if "signal_id" in kept.columns else [""] * len(kept)
    ex, tf = config.exchange, config.timeframe
    return [
        Signal(ex, sym, tf, b, p, d, v, a, i)
        for sym, b, p, d, v, a, i in zip(syms, bar_times, probs, dirs, vers, avail, ids, strict=True)
    ]


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
    start_time: datetime | None = None,
    until_bar_time: datetime | None = None,
    model_version: str | None = None,
) -> BacktestResult:
    """Backtest ``config`` over ``bars`` and ``signals``; store the run under ``run_id`` (replacing it).

    ``store_url`` None uses the default store (:class:`TraderSettings`); ``persist_run=False``
    keeps the run in memory only. ``start_time`` / ``until_bar_time`` / ``model_version`` select
    the same events as :func:`trader.live.run_live` does (see :mod:`trader.filters`); what they
    drop is counted in ``result.stats``.
    """
    flt = EventFilter.for_run(config, start_time=start_time, until_bar_time=until_bar_time, model_version=model_version)
    counts: Counter[str] = Counter()
    events = merge_events(bars_from_frame(bars, config, flt, counts), signals_from_frame(signals, config, flt, counts))
    log.info("backtest.start", extra={"run_id": run_id, "events": len(events)})
    store = TradeStore(store_url or TraderSettings().resolved_store_url()) if persist_run else None
    if store:
        store.begin_run(run_id, "backtest", config.model_dump(mode="json"))
    engine = Backtester(config).run(events)
    metrics = metrics_for(engine, config)
    if store:
        persist(store, run_id, engine, status="finished")
    stats = {"events": len(events), **{str(k): counts.get(str(k), 0) for k in Skip}}
    result = RunResult.from_engine(run_id, engine, metrics, stats)
    log.info(
        "backtest.done",
        extra={
            "run_id": run_id,
            "fills": len(engine.fills),
            "final_equity": round(metrics["final_equity"], 2),
        },
    )
    return BacktestResult(**vars(result))
