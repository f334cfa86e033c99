"""The main job's trade task records the alt side input it traded with, and paper and backtest get the same rows.

The lake (delta-rs, no JVM) holds January 2022's REAL BTC-PERP bars (1 h) and their gold.alt_features rows
scored from that month's real headlines and tweets (see tests/trader/test_lake_backtest_alt.py), and signals
with SYNTHETIC probabilities (a seeded pattern, not a model). Two stand-ins, both named here: the selector is
given (its choice on a model's validation segment is tested in tests/pipeline/test_trade_selector.py), and
the paper trader reads the candle and signal messages from a list instead of the Kafka broker
(tests/trader/test_live.py's ListSource).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

import pipeline.trading as trading
from cryptolake import topics
from cryptolake.ids import signal_id
from cryptolake.schemas import OhlcvV1, SignalV1
from cryptolake.settings import get_settings
from cryptolake.tables import SIGNALS_TABLE
from pipeline.interval import Interval
from pipeline.results import ScoreResult
from research.selection import SelectorChoice
from tests.models.lake_fixture import write_table
from tests.trader.test_lake_backtest_alt import _selector, lake, month  # noqa: F401 (module fixtures)
from tests.trader.test_live import ListDeadLetters, ListSource, _chunks
from tests.trader.test_regimes import HOUR, INST
from trader.feeds.kafka_source import Record
from trader.live import run_live

VERSION = "synthetic-alt"
INTERVAL = Interval(datetime(2022, 1, 10, tzinfo=UTC), datetime(2022, 2, 1, tzinfo=UTC))


def _ms(ts: Any) -> int:
    return int(pd.Timestamp(ts).value // 1_000_000)


@pytest.fixture
def task_lake(lake, month, monkeypatch, tmp_path) -> Iterator[tuple[Any, pd.DataFrame, pd.DataFrame]]:  # noqa: F811
    bars, _ = month
    rng = np.random.default_rng(9)
    probs = np.round(rng.uniform(0.2, 0.9, len(bars)), 4)
    signals = pd.DataFrame({
        "signal_id": [signal_id(VERSION, INST.exchange, INST.symbol, "1h", _ms(t)) for t in bars.open_time],
        "exchange": INST.exchange, "symbol": INST.symbol, "timeframe": "1h", "bar_time": bars.open_time,
        "probability": probs, "direction": np.where(probs > 0.5, 1, -1), "model_version": VERSION,
        "available_time": bars.open_time + HOUR})
    write_table(SIGNALS_TABLE, signals.assign(bar_date=signals.bar_time.dt.date), lake)
    settings = lake.model_copy(update={"market": lake.market.model_copy(
        update={"exchange": INST.exchange, "symbols": (INST.symbol,), "timeframe": "1h"})})
    monkeypatch.setenv("CRYPTOLAKE__TRADER__STORE_URL", f"sqlite:///{tmp_path}/trader.db")
    get_settings.cache_clear()
    yield settings, bars, signals
    get_settings.cache_clear()


def _messages(bars: pd.DataFrame, signals: pd.DataFrame) -> list[list[Record]]:
    ohlcv = [OhlcvV1(schema_version=1, event_time=_ms(b.open_time), available_time=_ms(b.open_time) + 3_600_000,
                     ingest_time=_ms(b.open_time) + 3_600_500, exchange=INST.exchange, symbol=INST.symbol,
                     timeframe="1h", open=b.open, high=b.high, low=b.low, close=b.close, volume=b.volume)
             for b in bars.itertuples(index=False)]
    sigs = [SignalV1(schema_version=2, signal_id=s.signal_id, event_time=_ms(s.bar_time),
                     available_time=_ms(s.available_time), ingest_time=_ms(s.available_time) + 900,
                     exchange=INST.exchange, symbol=INST.symbol, timeframe="1h", probability=s.probability,
                     direction=int(s.direction), model_version=VERSION)
            for s in signals.itertuples(index=False)]
    bar_recs = [Record(topics.MARKET_OHLCV, 0, i, m.key(), m.model_dump_json()) for i, m in enumerate(ohlcv)]
    sig_recs = [Record(topics.SIGNALS, 0, i, m.key(), m.model_dump_json()) for i, m in enumerate(sigs)]
    streams = [_chunks(sig_recs, 90), _chunks(bar_recs, 60)]  # signals ahead of the bars they are about
    batches: list[list[Record]] = []
    while any(streams):
        for s in streams:
            if s:
                batches.append(s.pop(0))
    return batches


def test_the_trade_task_records_the_alt_rows_it_traded_with(task_lake, monkeypatch) -> None:
    settings, bars, signals = task_lake
    choice = SelectorChoice(config=_selector(), thresholds=None, scores=pd.DataFrame(), reasons={"given": "test"})
    monkeypatch.setattr(trading, "selector_for", lambda *a, **k: choice)
    batches = _messages(bars, signals)

    def paper(config: Any, **kw: Any) -> Any:  # the Kafka broker replaced by the same messages from a list
        return run_live(config, source=ListSource(list(batches)), dead_letters=ListDeadLetters(),
                        **{**kw, "max_idle_s": 0})

    monkeypatch.setattr(trading, "run_live", paper)
    scored = ScoreResult(VERSION, INTERVAL.start.isoformat(), INTERVAL.end.isoformat(), len(signals), 0, 0, 0,
                         None, None)
    result = trading.trade(INTERVAL, settings, scored)
    alt = result.strategy["alt"]
    assert alt["status"] == "loaded" and alt["coins"] == ["BTC"] and alt["timeframe"] == "1h"
    warm = trading.warmup_for(trading.TraderConfig(**{**dict(trading.trader_config(settings)),
                                                      "strategies": (choice.config,)}))
    first_open = INTERVAL.start - warm * HOUR
    closes = bars.open_time + HOUR
    assert alt["rows"] == int(((closes > first_open) & (closes <= INTERVAL.end)).sum())  # (start, end]
    assert result.check.identical and result.check.paper_fills == result.check.backtest_fills > 0
    # no price regime maps to cash (BY_REGIME): every switch to cash is the sentiment rule's risk_off
    assert result.strategy["switches_by_member"].get("cash", 0) > 0
    with open(result.tearsheet) as fh:
        sheet = fh.read()
    assert "Alt data side input" in sheet and "<td>loaded</td>" in sheet
