"""A feed over DataFrames: bars and signals read from the lake (DuckDB over Delta) or a file.

Bars come from ``silver.bars`` through ``sql/trading_bars.sql`` (or any frame with the same
columns), signals from ``gold.signals``. Rows are validated into events (a bad timestamp or a
missing column raises :class:`~cryptolake.errors.DataValidationError` naming it; a candle that
breaks the candle rule becomes a :class:`~trader.feeds.base.SkippedBar`), filtered by the run's
:class:`~trader.filters.EventFilter` exactly as the Kafka feed filters (what is dropped is
counted), and yielded in :func:`~trader.feeds.base.event_sort_key` order.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from operator import itemgetter

import pandas as pd

from cryptolake.errors import DataValidationError
from cryptolake.logs import get_logger
from trader.config import TraderConfig
from trader.domain import Bar, Signal, timeframe_delta
from trader.feeds.base import Event, SkippedBar, decode_bar, event_sort_key
from trader.filters import EventFilter, Skip

log = get_logger(__name__)


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
    # one vectorised conversion, not a Timestamp per row (the same datetimes, same tzinfo)
    return list(ts.array.to_pydatetime())


def _require(df: pd.DataFrame, cols: Iterable[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataValidationError(f"{what}.columns", list(df.columns), f"missing required columns {missing}")


def _symbols(df: pd.DataFrame, config: TraderConfig, what: str) -> list[str]:
    if "symbol" in df.columns:
        return df["symbol"].astype(str).tolist()
    if len(config.markets) > 1:
        raise DataValidationError(
            f"{what}.columns", list(df.columns), f"a 'symbol' column is required to trade {list(config.symbols)}"
        )
    return [config.symbols[0]] * len(df)


def _exchanges(df: pd.DataFrame, config: TraderConfig) -> list[str]:
    """Each row's venue: its ``exchange`` column, or the config's exchange without one."""
    if "exchange" in df.columns:
        return df["exchange"].astype(str).tolist()
    return [config.exchange] * len(df)


def _instrument_mask(df: pd.DataFrame, config: TraderConfig) -> pd.Series:
    mask = pd.Series(True, index=df.index)
    if "timeframe" in df.columns:
        mask &= df["timeframe"] == config.timeframe
    if "symbol" in df.columns:
        venue = df["exchange"].astype(str) if "exchange" in df.columns else config.exchange
        mask &= (venue + ":" + df["symbol"].astype(str)).isin(config.instrument_keys)
    elif "exchange" in df.columns:
        mask &= df["exchange"] == config.exchange
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
) -> list[Bar | SkippedBar]:
    """Bars from a frame with ``open_time, open, high, low, close, volume`` and ``symbol`` (optional
    for a one-symbol config; exchange/timeframe optional, defaulting to the config's; a config with
    ``venues`` reads each row's ``exchange``).
    Rows outside the run (other instruments, outside ``flt``'s window) are dropped and counted; a
    candle that breaks the candle rule becomes a :class:`SkippedBar` (see :func:`decode_bar`)."""
    _require(df, ("open_time", "open", "high", "low", "close", "volume"), "bars")
    df = df.reset_index(drop=True)  # rows are selected by label below: labels must be unique
    flt = flt or EventFilter.for_run(config)
    counts = counts if counts is not None else Counter()
    delta = timeframe_delta(config.timeframe)
    open_time = _utc_series(df["open_time"], "open_time")
    masks = [(Skip.OTHER_INSTRUMENT, _instrument_mask(df, config))]
    if flt.bars_from is not None:
        masks.append((Skip.BEFORE_START, open_time >= flt.bars_from))
    end = flt.end_available_time
    if end is not None:
        masks.append((Skip.AFTER_END, open_time + delta <= end))
    kept = _apply(df, masks, counts, "bars")
    times = _pydt(open_time[kept.index])
    syms = _symbols(kept, config, "bars")
    cols = [kept[c].astype(float).tolist() for c in ("open", "high", "low", "close", "volume")]
    exs, tf = _exchanges(kept, config), config.timeframe
    return [
        decode_bar(ex, sym, tf, t, o, h, lo, c, v)
        for ex, sym, t, o, h, lo, c, v in zip(exs, syms, times, *cols, strict=True)
    ]


def signals_from_frame(
    df: pd.DataFrame, config: TraderConfig, flt: EventFilter | None = None, counts: Counter[str] | None = None
) -> list[Signal]:
    """Signals from a frame with ``bar_time`` (or ``event_time``), ``probability``, ``available_time``,
    ``symbol`` (optional for one symbol) and optional ``direction`` (default: sign of probability - 0.5)
    and ``model_version``. Rows outside the run are dropped and counted, as in live."""
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
    exs, tf = _exchanges(kept, config), config.timeframe
    return [
        Signal(ex, sym, tf, b, p, d, v, a, i)
        for ex, sym, b, p, d, v, a, i in zip(exs, syms, bar_times, probs, dirs, vers, avail, ids, strict=True)
    ]


def merge_events(bars: Iterable[Bar | SkippedBar], signals: Iterable[Signal]) -> list[Event]:
    """All events in the engine's processing order; duplicates are refused, not dropped."""
    keyed = sorted([(event_sort_key(e), e) for e in itertools.chain(bars, signals)], key=itemgetter(0))
    for (prev, _), (cur, _) in itertools.pairwise(keyed):
        if prev == cur:
            raise DataValidationError("event", cur, "duplicate bar or signal")
    return [e for _, e in keyed]


class FrameFeed:
    """Bars and signals from frames, as one ordered stream cut into batches of ``batch_size`` events."""

    def __init__(
        self,
        bars: pd.DataFrame,
        signals: pd.DataFrame | None,
        config: TraderConfig,
        event_filter: EventFilter | None = None,
        *,
        batch_size: int = 10_000,
    ) -> None:
        if batch_size < 1:
            raise DataValidationError("batch_size", batch_size, "must be >= 1")
        flt = event_filter or EventFilter.for_run(config)
        self.counts: Counter[str] = Counter()
        bar_events = bars_from_frame(bars, config, flt, self.counts)
        signal_events = [] if signals is None else signals_from_frame(signals, config, flt, self.counts)
        self.events = merge_events(bar_events, signal_events)
        self.batch_size = batch_size

    def __len__(self) -> int:
        return len(self.events)

    def batches(self) -> Iterator[Sequence[Event]]:
        for i in range(0, len(self.events), self.batch_size):
            yield self.events[i : i + self.batch_size]

    def commit(self) -> None:
        """Nothing to acknowledge: a frame is read whole."""

    def close(self) -> None:
        """Nothing to release."""

    @property
    def stats(self) -> dict[str, int | str]:
        return {"events": len(self.events), **{str(k): self.counts.get(str(k), 0) for k in Skip}}
