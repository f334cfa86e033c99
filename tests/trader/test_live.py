"""The streaming trader gives the backtest's fills, whatever order the topics arrive in."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import timedelta
from typing import Any

import pandas as pd
import pytest

from cryptolake import topics
from cryptolake.ids import signal_id
from cryptolake.schemas import OhlcvV1, SignalV1
from tests.trader.conftest import btc_frame, make_config, synthetic_signals
from trader.backtest import run_backtest
from trader.config import TraderConfig
from trader.feeds.kafka import KafkaFeed
from trader.feeds.kafka_source import Record
from trader.filters import EventFilter
from trader.live import run_live
from trader.store import TradeStore
from trader.strategies.threshold import ThresholdConfig

N = 150


def _config(exchange: str = "gymcrypto") -> TraderConfig:
    return make_config(
        exchange=exchange,
        strategy=ThresholdConfig(threshold=0.6, fraction=0.5, stop_loss_pct=0.006, take_profit_pct=0.008),
    )


def _inputs() -> tuple[pd.DataFrame, pd.DataFrame]:
    bars = btc_frame(N, start=1000)
    probs = [0.9 if (i * 7) % 11 < 6 else 0.3 for i in range(N)]  # SYNTHETIC deterministic pattern
    return bars, synthetic_signals(bars, probs)


def _ms(ts: Any) -> int:
    return int(pd.Timestamp(ts).value // 1_000_000)


def _messages(bars: pd.DataFrame, signals: pd.DataFrame, exchange: str = "gymcrypto") -> tuple[list, list]:
    ohlcv, sigs = [], []
    b: Any
    s: Any
    for b in bars.itertuples():
        t = _ms(b.open_time)
        ohlcv.append(
            OhlcvV1(
                schema_version=1,
                event_time=t,
                available_time=t + 1_800_000,
                ingest_time=t + 1_800_500,
                exchange=exchange,
                symbol="BTC/USD",
                timeframe="30m",
                open=b.open,
                high=b.high,
                low=b.low,
                close=b.close,
                volume=b.volume,
            )
        )
    for s in signals.itertuples():
        t = _ms(s.bar_time)
        sigs.append(
            SignalV1(
                schema_version=2,
                signal_id=signal_id("synthetic-test", exchange, "BTC/USD", "30m", t),
                event_time=t,
                available_time=_ms(s.available_time),
                ingest_time=t + 1_801_000,
                exchange=exchange,
                symbol="BTC/USD",
                timeframe="30m",
                probability=s.probability,
                direction=1 if s.probability > 0.5 else -1,
                model_version="synthetic-test",
            )
        )
    return ohlcv, sigs


def _records(msgs: list, topic: str) -> list[Record]:
    return [Record(topic, 0, i, m.key(), m.model_dump_json()) for i, m in enumerate(msgs)]


class ListSource:
    """Delivers fixed batches; on commit, notes what the store already held (must be persisted first)."""

    def __init__(self, batches: list[list[Record]], store: TradeStore | None = None, run_id: str = "") -> None:
        self.batches = list(batches)
        self.commits: list[dict[tuple[str, int], int]] = []
        self.persisted_at_commit: list[int] = []
        self.store, self.run_id = store, run_id

    def poll(self, timeout_ms: int) -> list[Record]:
        return self.batches.pop(0) if self.batches else []

    def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        self.commits.append(dict(offsets))
        if self.store is not None:
            self.persisted_at_commit.append(len(self.store.equity(self.run_id)))

    def close(self) -> None:
        pass


class ListDeadLetters:
    def __init__(self) -> None:
        self.items: list[tuple[str, str, str]] = []

    def dead_letter(self, topic: str, key: str, raw: str, reason: str) -> None:
        self.items.append((topic, raw, reason))


def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _fill_cols(df: pd.DataFrame) -> pd.DataFrame:
    return df[["client_id", "side", "price", "qty", "fee", "ts", "liquidity", "tag"]].reset_index(drop=True)


@pytest.fixture(scope="module")
def backtest(tmp_path_factory):
    bars, signals = _inputs()
    db = tmp_path_factory.mktemp("bt") / "bt.db"
    return run_backtest(bars, signals, _config(), run_id="bt", store_url=f"sqlite:///{db}")


def test_live_fed_signals_first_gives_identical_fills_to_backtest(backtest, tmp_path) -> None:
    ohlcv, sigs = _messages(*_inputs())
    # adversarial arrival: every signal batch arrives before the bars it refers to
    batches = [
        b
        for pair in zip(
            _chunks(_records(sigs, topics.SIGNALS), 40), _chunks(_records(ohlcv, topics.MARKET_OHLCV), 25), strict=False
        )
        for b in pair
    ]
    batches += _chunks(_records(ohlcv, topics.MARKET_OHLCV)[100:], 25)
    result = run_live(
        _config(),
        run_id="live1",
        store_url=f"sqlite:///{tmp_path}/l.db",
        max_idle_s=0,
        source=ListSource(batches),
        dead_letters=ListDeadLetters(),
    )
    assert len(backtest.fills) >= 10
    pd.testing.assert_frame_equal(_fill_cols(result.fills), _fill_cols(backtest.fills))
    assert result.metrics["final_equity"] == pytest.approx(backtest.metrics["final_equity"])
    assert result.stats["events"] == 2 * N and result.stats["stopped_by"] == "idle"


def test_bad_records_are_dead_lettered_with_reason_and_do_not_change_fills(backtest, tmp_path) -> None:
    ohlcv, sigs = _messages(*_inputs())
    recs = _records(ohlcv, topics.MARKET_OHLCV) + _records(sigs, topics.SIGNALS)
    bad_json = Record(topics.SIGNALS, 1, 0, "k", "{not json")
    bad_prob = Record(topics.SIGNALS, 1, 1, "k", json.dumps({**json.loads(recs[-1].value), "probability": 1.7}))
    other = _messages(*_inputs(), exchange="elsewhere")[0][0]
    foreign = Record(topics.MARKET_OHLCV, 2, 0, other.key(), other.model_dump_json())
    dlq = ListDeadLetters()
    result = run_live(
        _config(),
        run_id="live2",
        store_url=f"sqlite:///{tmp_path}/l.db",
        max_idle_s=0,
        source=ListSource([[bad_json, bad_prob, foreign], *_chunks(recs, 60)]),
        dead_letters=dlq,
    )
    reasons = [r for _, _, r in dlq.items]
    assert len(reasons) == 2 and "not JSON" in reasons[0] and "probability" in reasons[1]
    assert result.stats["other_instruments"] == 1
    pd.testing.assert_frame_equal(_fill_cols(result.fills), _fill_cols(backtest.fills))


def test_offsets_are_committed_only_after_state_is_persisted(tmp_path) -> None:
    ohlcv, sigs = _messages(*_inputs())
    url = f"sqlite:///{tmp_path}/l.db"
    store = TradeStore(url)
    source = ListSource(
        [*_chunks(_records(ohlcv, topics.MARKET_OHLCV), 50), *_chunks(_records(sigs, topics.SIGNALS), 50)],
        store,
        "live3",
    )
    run_live(_config(), run_id="live3", store_url=url, max_idle_s=0, source=source, dead_letters=ListDeadLetters())
    # nothing is processed until both streams have data, so the first commits come with the signals
    # bars 0-49 and their signals; bar 50 onwards waits in the buffer, so its offset is not committed
    assert source.commits[0] == {(topics.MARKET_OHLCV, 0): 50, (topics.SIGNALS, 0): 50}
    # every commit saw the equity rows of all bars processed before it already in the store
    assert source.persisted_at_commit == sorted(source.persisted_at_commit)
    assert source.persisted_at_commit[-1] == N
    final = {}
    for c in source.commits:
        final.update(c)
    assert final == {(topics.MARKET_OHLCV, 0): N, (topics.SIGNALS, 0): N}


def test_until_bar_time_stops_and_leaves_later_offsets_uncommitted(tmp_path) -> None:
    bars, signals = _inputs()
    ohlcv, sigs = _messages(bars, signals)
    recs = [
        r
        for pair in zip(_records(ohlcv, topics.MARKET_OHLCV), _records(sigs, topics.SIGNALS), strict=True)
        for r in pair
    ]
    source = ListSource(_chunks(recs, 30))
    until = pd.Timestamp(bars.open_time[99]).to_pydatetime()
    result = run_live(
        _config(),
        run_id="live4",
        store_url=f"sqlite:///{tmp_path}/l.db",
        max_idle_s=5,
        until_bar_time=until,
        source=source,
        dead_letters=ListDeadLetters(),
    )
    assert result.stats["stopped_by"] == "until_bar_time"
    assert result.equity["ts"].iloc[-1] == bars.open_time[99] + timedelta(minutes=30)
    final = {}
    for c in source.commits:
        final.update(c)
    assert final == {(topics.MARKET_OHLCV, 0): 100, (topics.SIGNALS, 0): 100}
    short = run_backtest(bars.iloc[:100], signals.iloc[:100], _config(), run_id="b", persist_run=False)
    pd.testing.assert_frame_equal(_fill_cols(result.fills), _fill_cols(short.fills))


def test_stop_event_stops_the_loop(tmp_path) -> None:
    stop = threading.Event()
    stop.set()
    source = ListSource([])
    result = run_live(
        _config(),
        run_id="live5",
        store_url=f"sqlite:///{tmp_path}/l.db",
        max_idle_s=60,
        stop_event=stop,
        source=source,
        dead_letters=ListDeadLetters(),
    )
    assert result.stats["stopped_by"] == "stop_event" and result.fills.empty


def test_late_event_after_processing_is_dead_lettered(tmp_path) -> None:
    ohlcv, sigs = _messages(*_inputs())
    o, s = _records(ohlcv, topics.MARKET_OHLCV), _records(sigs, topics.SIGNALS)
    dlq = ListDeadLetters()
    config = _config()
    feed = KafkaFeed(ListSource([]), dlq, EventFilter.for_run(config), [i.key for i in config.instruments])
    feed.ingest(o[:10] + s[:10])
    assert len(feed._release()) == 20
    feed.ingest([o[3]])  # redelivered after it was processed
    assert len(dlq.items) == 1 and dlq.items[0][2].startswith("late")
    feed.ingest([o[10], o[10]])  # the same record twice before processing: one duplicate
    assert feed.counters.duplicates == 1


@pytest.mark.kafka
def test_live_trader_over_kafka_matches_backtest(kafka_bootstrap, lake_settings, backtest, tmp_path) -> None:
    from cryptolake.bus import Producer, ensure_topics

    settings = lake_settings.model_copy(
        update={"kafka": lake_settings.kafka.model_copy(update={"bootstrap_servers": kafka_bootstrap})}
    )
    exchange = f"trader-test-{uuid.uuid4().hex[:8]}"  # isolates this run from other data on the topics
    bars, signals = _inputs()
    ohlcv, sigs = _messages(bars, signals, exchange=exchange)
    ensure_topics([topics.MARKET_OHLCV, topics.SIGNALS], settings)
    with Producer(settings) as producer:
        for m in sigs + ohlcv:  # signals first: the trader must reorder
            producer.send_message(m)
    result = run_live(
        _config(exchange),
        settings=settings,
        run_id=f"kafka-{exchange}",
        store_url=f"sqlite:///{tmp_path}/k.db",
        until_bar_time=pd.Timestamp(bars.open_time[N - 1]).to_pydatetime(),
        max_idle_s=20,
    )
    assert result.stats["stopped_by"] == "until_bar_time"
    pd.testing.assert_frame_equal(_fill_cols(result.fills), _fill_cols(backtest.fills))
