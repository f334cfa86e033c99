"""Configurations of the one trading node, and the one way to run it.

Backtest and paper trading are the same node (:func:`build_node`: the config's strategies, the
risk engine, the paper venue as execution client *and* simulator, a simulated clock); they differ
only in the feed (:class:`~trader.feeds.frame.FrameFeed` or :class:`~trader.feeds.kafka.KafkaFeed`).
A live configuration swaps the execution client for a real venue's and drops the simulator.
:func:`run_node` drives any node from any feed, persisting after every batch.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from cryptolake.logs import get_logger
from trader.clock import SimClock
from trader.config import TraderConfig
from trader.execution.paper import PaperConfig, PaperExecutionClient
from trader.feeds.base import EventFeed
from trader.metrics import compute_metrics
from trader.node import TradingNode, warmup_bars
from trader.portfolio import Portfolio
from trader.results import RunResult
from trader.risk import RiskEngine
from trader.snapshot import AccountSnapshot, restore, take_snapshot
from trader.store import TradeStore
from trader.strategies.registry import build_strategy
from trader.strategy import Strategy

log = get_logger(__name__)


def build_strategies(config: TraderConfig) -> list[Strategy]:
    """One instance per configured strategy, over the instruments it trades."""
    out = []
    for spec in config.strategies:
        instruments = [i for i in config.instruments
                       if spec.symbols is None or i.symbol in spec.symbols or i.key in spec.symbols]
        out.append(build_strategy(spec, instruments))
    return out


def build_node(
    config: TraderConfig, *, start_time: datetime | None = None, account: AccountSnapshot | None = None
) -> TradingNode:
    """The backtest/paper node of ``config``: bars before ``start_time`` only warm it up; ``account``
    (the snapshot an earlier run ended with) is the account it continues."""
    instruments = config.instruments
    paper = PaperConfig(**{**config.paper.model_dump(), "fee_currency": config.quote_currency})
    venue = PaperExecutionClient(paper, instruments)
    node = TradingNode(
        build_strategies(config),
        RiskEngine(config.risk),
        venue,
        Portfolio(config.initial_cash, instruments),
        instruments,
        clock=SimClock(),
        simulator=venue,
        start_time=start_time,
        max_flat_bars=config.max_flat_bars,
    )
    if account is not None:
        restore(node, account)
    return node


def warmup_for(config: TraderConfig) -> int:
    """The warm-up bars of the node ``config`` builds (for callers choosing what to read)."""
    return warmup_bars(build_strategies(config), config.max_flat_bars)


def metrics_for(result: RunResult, node: TradingNode, config: TraderConfig) -> dict[str, Any]:
    """Metrics of a node's run (the same for every configuration), from its result's frames (built once)."""
    return compute_metrics(result.equity, result.fills, result.trades, initial_cash=node.initial_equity,
                           timeframe=config.timeframe)


def persist(store: TradeStore, run_id: str, node: TradingNode, *, status: str) -> None:
    """Write what changed in ``node`` since the last checkpoint."""
    last = node.equity[-1].ts if node.equity else None
    store.write_changes(run_id, node.drain_changes(), node.portfolio.positions.values(), last_event_time=last,
                        status=status)


def run_node(
    node: TradingNode,
    feed: EventFeed,
    config: TraderConfig,
    *,
    run_id: str,
    mode: str,
    store: TradeStore | None,
    final_status: str = "finished",
    progress: Callable[[int], None] | None = None,
    account_as_of: datetime | None = None,
) -> RunResult:
    """Run ``node`` over ``feed``; with a ``store``, replace the run ``run_id`` and persist every batch.

    With ``account_as_of`` the result carries the account's snapshot at that time (``result.account``),
    for the next run to continue from."""
    if store is not None:
        store.begin_run(run_id, mode, config.model_dump(mode="json"))
    log.info("node.run", extra={"run_id": run_id, "mode": mode})
    try:
        node.run(feed, checkpoint=(lambda: persist(store, run_id, node, status="running")) if store else None,
                 progress=progress)
    finally:
        feed.close()
    if store is not None:
        persist(store, run_id, node, status=final_status)
    result = RunResult.from_node(run_id, node, {}, dict(feed.stats))
    result.metrics = metrics = metrics_for(result, node, config)
    log.info("node.done", extra={"run_id": run_id, "mode": mode, "fills": len(node.fills),
                                 "final_equity": round(metrics["final_equity"], 2)})
    if account_as_of is not None:
        result.account = take_snapshot(node, account_as_of)
    return result
