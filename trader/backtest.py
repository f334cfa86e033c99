"""Backtests: the trading node over a frame feed (bars and signals from the lake or a file).

:func:`run_backtest` is the entry point the pipeline and ``cryptolake backtest`` call. It builds
the same node a paper run builds (:func:`trader.build.build_node`) and drives it from a
:class:`~trader.feeds.frame.FrameFeed`, so the same arguments to :func:`trader.live.run_live`
select the same events and give identical fills.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pandas as pd

from trader.build import build_node, run_node
from trader.config import TraderConfig, TraderSettings
from trader.feeds.frame import FrameFeed
from trader.filters import EventFilter
from trader.node import TradingNode
from trader.results import BacktestResult
from trader.snapshot import AccountSnapshot
from trader.store import TradeStore


def run_backtest(
    bars: pd.DataFrame,
    signals: pd.DataFrame | None,
    config: TraderConfig,
    *,
    run_id: str,
    store_url: str | None = None,
    persist_run: bool = True,
    start_time: datetime | None = None,
    until_bar_time: datetime | None = None,
    model_version: str | None = None,
    account: AccountSnapshot | None = None,
    progress: Callable[[int, int], None] | None = None,
    inspect: Callable[[TradingNode], None] | None = None,
) -> BacktestResult:
    """Backtest ``config`` over ``bars`` and ``signals``; store the run under ``run_id`` (replacing it).

    ``store_url`` None uses the default store (:class:`TraderSettings`); ``persist_run=False``
    keeps the run in memory only. ``start_time`` / ``until_bar_time`` / ``model_version`` select
    the events (see :mod:`trader.filters`); bars before ``start_time`` warm the node up. What is
    dropped is counted in ``result.stats``; ``progress(done, total)`` is called after each batch.
    ``account`` continues an earlier run's account; with ``until_bar_time`` the result carries the
    account at the run's end (``result.account``). ``inspect`` gets the node after the run (what its
    strategies recorded, such as a selector's choices).
    """
    node = build_node(config, start_time=start_time, account=account)
    flt = EventFilter.for_run(config, start_time=start_time, until_bar_time=until_bar_time,
                              model_version=model_version, warmup_bars=node.warmup_bars)
    feed = FrameFeed(bars, signals, config, flt)
    store = TradeStore(store_url or TraderSettings().resolved_store_url()) if persist_run else None
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, len(feed))

    end = flt.end_available_time
    result = run_node(node, feed, config, run_id=run_id, mode="backtest", store=store, progress=step,
                      account_as_of=end)
    if inspect is not None:
        inspect(node)
    return BacktestResult(**vars(result))
