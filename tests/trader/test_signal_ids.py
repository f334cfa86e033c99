"""The trader's Signal carries the signal id, from Kafka (decode) and from a frame (backtest)."""

from __future__ import annotations

import pandas as pd

from cryptolake import topics
from cryptolake.ids import signal_id
from cryptolake.schemas import SignalV1
from tests.trader.conftest import btc_frame, make_config, synthetic_signals
from trader.backtest import signals_from_frame
from trader.domain import Signal
from trader.live import Record, decode


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
