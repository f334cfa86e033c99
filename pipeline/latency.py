"""Per-bar latency of the continuous pipeline: p50/p99 by stage, from ``ops.bar_stages``.

Each streaming stage stamps the bars it handled (:mod:`spark_jobs.stages`): ``ingest`` (the
connector's receive time), ``landed`` (bronze), ``gold`` (features committed), ``signal`` (published
and acknowledged). The hot path (:mod:`pipeline.hot_stream`) stamps its own chain: ``ingest``,
``hot_features`` (gold row computed in process) and ``hot_signal`` (its signal acknowledged). The
Kafka-fed trader stamps ``order`` (:mod:`trader.stages`): an order sent in answer to the bar's signal,
at the time it was sent. Both routes publish the same signal id per (model, bar) and the trader trades
the first to arrive, so an order ends the chain whose signal was stamped first for its bar. Two views:

* ``from_close``: seconds from the venue's bar close (open time + timeframe) to each stage: what
  the issue's goal (p99 < 5 s for 1-minute bars) is about, when bars are ingested at their close;
* ``hops``: seconds between consecutive stages of each chain (ingest -> landed -> gold -> signal
  -> order; ingest -> hot_features -> hot_signal -> order) and ``ingest -> signal``,
  ``ingest -> hot_signal``, ``ingest -> order``: the pipeline's own part, also meaningful for a replay
  of past bars, whose closes are long gone.

:func:`latency_report` is pure (a frame in, a report out); :func:`bar_latency` reads the table with
delta-rs (no JVM), so ``cryptolake status`` can call it cheaply.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from cryptolake.settings import Settings
from cryptolake.tables import BAR_STAGES
from cryptolake.types import TIMEFRAME_MS

SPARK_CHAIN: tuple[str, ...] = ("ingest", "landed", "gold", "signal")
HOT_CHAIN: tuple[str, ...] = ("ingest", "hot_features", "hot_signal")
ORDER = "order"  # the trader's stage: the end of whichever chain's signal reached it first
STAGES: tuple[str, ...] = (*SPARK_CHAIN, *HOT_CHAIN[1:], ORDER)
KEYS = ["exchange", "symbol", "timeframe", "ts"]


@dataclass(frozen=True)
class Percentiles:
    """p50 and p99 (seconds) over ``bars`` bars."""

    bars: int
    p50: float
    p99: float
    max: float


@dataclass(frozen=True)
class LatencyReport:
    """Per-bar latency by stage (seconds). ``end_to_end`` is close -> ``signal`` (the Spark chain's end to end);
    ``hot`` is close -> ``hot_signal`` (the hot path's); ``order`` is close -> ``order`` (an order sent in answer
    to the bar's signal: the trader's end to end, whichever chain delivered the signal)."""

    bars: int
    since: str | None
    from_close: dict[str, Percentiles] = field(default_factory=dict)
    hops: dict[str, Percentiles] = field(default_factory=dict)
    end_to_end: Percentiles | None = None
    hot: Percentiles | None = None
    order: Percentiles | None = None


def _pct(values: pd.Series) -> Percentiles | None:
    v = values.dropna().to_numpy(dtype=float)
    if len(v) == 0:
        return None
    return Percentiles(len(v), float(np.percentile(v, 50)), float(np.percentile(v, 99)), float(v.max()))


def latency_report(stages: pd.DataFrame, since: datetime | None = None) -> LatencyReport:
    """``ops.bar_stages`` rows -> the report; the first stamp of each (bar, stage) counts.

    ``since``: only bars whose venue close is at or after it.
    """
    if stages.empty:
        return LatencyReport(0, None if since is None else since.isoformat())
    frame = stages.copy()
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    frame["stage_time"] = pd.to_datetime(frame["stage_time"], utc=True)
    wide = frame.pivot_table(index=KEYS, columns="stage", values="stage_time", aggfunc="min").reset_index()
    step = pd.to_timedelta(wide["timeframe"].map(TIMEFRAME_MS), unit="ms")
    wide["close"] = wide["ts"] + step
    if since is not None:
        wide = wide[wide["close"] >= pd.Timestamp(since)]
    present = [s for s in STAGES if s in wide.columns]
    from_close = {s: p for s in present if (p := _pct((wide[s] - wide["close"]).dt.total_seconds())) is not None}
    hops: dict[str, Percentiles] = {}

    def hop(a: str, b: str, rows: pd.DataFrame) -> None:
        if (a in present and b in present and f"{a}->{b}" not in hops
                and (p := _pct((rows[b] - rows[a]).dt.total_seconds())) is not None):
            hops[f"{a}->{b}"] = p

    for chain in (SPARK_CHAIN, HOT_CHAIN):
        for a, b in itertools.pairwise([s for s in chain if s in present]):
            hop(a, b, wide)
    for a, b in (("ingest", "signal"), ("ingest", "hot_signal")):
        hop(a, b, wide)
    if ORDER in present:
        for signal, answered in _order_hops(wide, present):
            hop(signal, ORDER, answered)
        hop("ingest", ORDER, wide)
    return LatencyReport(len(wide), None if since is None else since.isoformat(), from_close, hops,
                         from_close.get("signal"), from_close.get("hot_signal"), from_close.get(ORDER))


def _order_hops(wide: pd.DataFrame, present: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """(signal stage, its bars) for ``-> order``: each bar's order counted after the signal stamped first."""
    signals = [s for s in ("signal", "hot_signal") if s in present]
    if not signals:
        return []
    times = wide[signals]
    signalled = times.notna().any(axis=1)
    first = times[signalled].idxmin(axis=1).reindex(wide.index)
    return [(s, wide[first == s]) for s in signals]


def bar_latency(settings: Settings, since: datetime | None = None) -> LatencyReport:
    """The per-bar latency report of the lake's ``ops.bar_stages`` (empty when nothing streamed yet)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        table = DeltaTable(BAR_STAGES.path(settings))
    except (TableNotFoundError, FileNotFoundError, OSError):
        return LatencyReport(0, None if since is None else since.isoformat())
    columns = ["exchange", "symbol", "timeframe", "ts", "stage", "stage_time"]
    if since is not None:
        frame = table.to_pandas(columns=columns, filters=[("bar_date", ">=", since.date())])
    else:
        frame = table.to_pandas(columns=columns)
    return latency_report(frame, since)
