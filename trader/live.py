"""Paper trading from Kafka: the trading node over a Kafka feed (``market.ohlcv`` + ``signals``).

:func:`run_live` builds the same node a backtest builds (:func:`trader.build.build_node`) and
drives it from a :class:`~trader.feeds.kafka.KafkaFeed`; after each released batch the node's
changes are written to the store and only then are the offsets committed. A run (``run_id``)
always replays its topics (from the beginning, or from the warm-up start) and replaces what the
store holds for it. Identical arguments to :func:`trader.backtest.run_backtest` give identical fills.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from cryptolake.settings import Settings, get_settings
from cryptolake.stages import StageSink
from trader.build import build_node, run_node
from trader.config import TraderConfig, TraderSettings
from trader.feeds.kafka import INPUT_TOPICS, KafkaFeed
from trader.feeds.kafka_source import DeadLetters, KafkaDeadLetters, KafkaSource, Source
from trader.filters import EventFilter
from trader.results import LiveResult
from trader.snapshot import AccountSnapshot
from trader.stages import OrderStages
from trader.store import TradeStore
from trader.telemetry import TraderMetrics


def run_live(
    config: TraderConfig,
    *,
    settings: Settings | None = None,
    run_id: str,
    store_url: str | None = None,
    until_bar_time: datetime | None = None,
    max_idle_s: float | None = None,
    stop_event: threading.Event | None = None,
    source: Source | None = None,
    dead_letters: DeadLetters | None = None,
    start_time: datetime | None = None,
    model_version: str | None = None,
    account: AccountSnapshot | None = None,
    stages: StageSink | None = None,
    stamp_every_s: float = 2.0,
    metrics: TraderMetrics | None = None,
) -> LiveResult:
    """Paper-trade ``config`` from Kafka (or ``source``) until stopped; store the run under ``run_id``.

    ``start_time``: signals about earlier bars are not traded and earlier bars only warm the node
    up (Kafka is sought to the warm-up start first); ``model_version``: only that model's signals
    are traded; ``until_bar_time``: the open time of the last bar to process (the result then carries
    the account at that bar's close); ``account``: an earlier run's account to continue.

    ``stages``: where the ``order`` stage of each order sent in answer to a signal goes (``ops.bar_stages``,
    :class:`trader.stages.DeltaStages`), appended after a batch at most every ``stamp_every_s`` and at the
    end; ``metrics``: observes bar close -> order sent and signal received -> order sent for those orders.
    """
    settings = settings or get_settings()
    tsettings = TraderSettings()
    node = build_node(config, start_time=start_time, account=account)
    flt = EventFilter.for_run(config, start_time=start_time, until_bar_time=until_bar_time,
                              model_version=model_version, warmup_bars=node.warmup_bars)
    store = TradeStore(store_url or tsettings.resolved_store_url(settings))
    seek = None if flt.bars_from is None else flt.bars_from - timedelta(seconds=tsettings.seek_margin_s)
    src: Source = source or KafkaSource(
        INPUT_TOPICS,
        group_id=f"{tsettings.group_prefix}.{run_id}",
        settings=settings,
        seek_time=seek,
        max_poll_records=tsettings.max_poll_records,
    )
    dlq: DeadLetters = dead_letters or KafkaDeadLetters(settings)
    feed = KafkaFeed(
        src, dlq, flt, [i.key for i in config.instruments],
        poll_timeout_ms=tsettings.poll_timeout_ms,
        max_idle_s=max_idle_s if max_idle_s is not None else tsettings.max_idle_s,
        stop_event=stop_event,
    )
    orders = OrderStages(stages, every_s=stamp_every_s, metrics=metrics, since_received=feed.since_received)
    node.on_sent = orders.on_sent
    try:
        result = run_node(node, feed, config, run_id=run_id, mode="live", store=store, final_status="stopped",
                          account_as_of=flt.end_available_time, progress=lambda _events: orders.maybe_flush())
        orders.flush()  # after a failed run the last unwritten stamps are lost, never its error
    finally:
        if isinstance(dlq, KafkaDeadLetters):
            dlq.close()
    result.stats["order_stamps"] = orders.stamped
    return LiveResult(**vars(result))
