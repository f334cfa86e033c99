"""The trader's Signal carries the signal id, from Kafka (decode) and from a frame (backtest)."""

from __future__ import annotations

import pandas as pd

from cryptolake import topics
from cryptolake.ids import signal_id
from cryptolake.schemas import SignalV1
from tests.trader.conftest import btc_frame, make_config, synthetic_signals
from trader.build import build_node
from trader.domain import Bar, Signal
from trader.feeds.frame import signals_from_frame
from trader.feeds.kafka import decode
from trader.feeds.kafka_source import Record


def _ms(ts: pd.Timestamp) -> int:
    return int(ts.value // 1_000_000)


def test_decode_keeps_the_signal_id_of_the_message() -> None:
    bar = btc_frame(1, start=1000)["open_time"].iloc[0]
    sid = signal_id("synthetic-test", "gymcrypto", "BTC/USD", "30m", _ms(bar))
    msg = SignalV1(schema_version=2, signal_id=sid, exchange="gymcrypto", symbol="BTC/USD", timeframe="30m",
                   probability=0.7, direction=1, model_version="synthetic-test", event_time=_ms(bar),
                   available_time=_ms(bar) + 1_800_000, ingest_time=_ms(bar) + 1_800_000)
    event = decode(Record(topics.SIGNALS, 0, 0, msg.key(), msg.model_dump_json()))
    assert isinstance(event, Signal)
    assert event.signal_id == sid and event.bar_time == bar.to_pydatetime()


def test_signals_from_a_frame_take_the_signal_id_column_when_present() -> None:
    bars = btc_frame(3, start=1000)
    frame = synthetic_signals(bars, [0.7, 0.2, 0.8])  # SYNTHETIC
    config = make_config()
    assert [s.signal_id for s in signals_from_frame(frame, config)] == ["", "", ""]
    with_ids = frame.assign(signal_id=["a1", "b2", "c3"])
    assert [s.signal_id for s in signals_from_frame(with_ids, config)] == ["a1", "b2", "c3"]


def test_the_node_ignores_a_signal_id_it_has_seen() -> None:
    bars = btc_frame(3, start=1000)
    node = build_node(make_config())
    t = [b.to_pydatetime() for b in bars.open_time]
    half = t[1] - t[0]
    row = bars.iloc[0]
    node.on_event(Bar("gymcrypto", "BTC/USD", "30m", t[0], t[1], row.open, row.high, row.low, row.close, row.volume))
    first = Signal("gymcrypto", "BTC/USD", "30m", t[0], 0.9, 1, "m", t[1], "id-1")  # SYNTHETIC
    again = Signal("gymcrypto", "BTC/USD", "30m", t[0], 0.9, 1, "m", t[1] + half / 2, "id-1")  # re-published later
    node.on_event(first)
    assert len(node.client.open_orders()) == 1  # the entry
    node.on_event(again)
    assert node.counts["duplicate_signals"] == 1 and len(node.client.open_orders()) == 1
