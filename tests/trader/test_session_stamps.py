"""The ccxt trading session stamps the ``order`` stage of every order it sends on a bar, for that bar.

REAL Binance BTC/USDT hourly candles (CryptoDataDownload, shared data) served by an in-memory ccxt stand-in
(no network), the SYNTHETIC churn strategy of the live tests (an order on almost every bar), a list stage sink
and an injected stamp clock: every stamp is checked against the bar the order answered and that clock. The
same session against the local exchange (real ccxt, orders really sent) is the last test.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cryptolake.tables import BAR_STAGES
from tests.trader.test_order_stages import ListSink
from trader.config import TraderConfig
from trader.domain import OrderStatus
from trader.execution.ccxt_client import CcxtVenueConfig
from trader.killswitch import KillSwitchConfig
from trader.session import SessionConfig, TradingSession
from trader.store import TradeStore

CHURN = "tests/trader/live/churn.py:Churn"
CANDLES = "market/ohlcv_1h/ingiorn/Binance_BTCUSDT_1h.csv.gz"
HOUR_MS = 3_600_000
BTC = "binance:BTC/USDT"


class ReplayVenue:
    """The ccxt calls a paper session makes (markets, candles, the venue clock) over real candles; ``visible``
    candles are published, the last of them closed on the venue's clock."""

    def __init__(self, rows: list[list[float]], visible: int) -> None:
        self.rows, self.visible = rows, visible

    def load_markets(self) -> dict[str, Any]:
        return {"BTC/USDT": {"precision": {"price": 0.01, "amount": 0.00001}, "base": "BTC", "quote": "USDT"}}

    def fetch_ohlcv(self, symbol: str, timeframe: str, since: int | None = None, limit: int | None = None) -> list:
        assert symbol == "BTC/USDT" and timeframe == "1h"
        rows = self.rows[:self.visible]
        if since is None:
            return rows[-(limit or len(rows)):]
        return [r for r in rows if r[0] >= since][:limit]

    def milliseconds(self) -> int:
        return int(self.rows[self.visible - 1][0]) + HOUR_MS

    def last_close_s(self) -> float:
        return self.milliseconds() / 1000


class StampClock:
    """The wall clock of stamps: the venue's last bar close plus a fixed delay (seconds)."""

    def __init__(self, venue: ReplayVenue, delay_s: float) -> None:
        self.venue, self.delay_s = venue, delay_s

    def __call__(self) -> float:
        return self.venue.last_close_s() + self.delay_s


def _rows(shared_data: Path, n: int) -> list[list[float]]:
    df = pd.read_csv(shared_data / CANDLES, skiprows=1).sort_values("unix").tail(n)
    return df[["unix", "open", "high", "low", "close", "Volume BTC"]].astype(float).values.tolist()


def _session(venue: ReplayVenue, tmp_path: Path, sink: ListSink | None, clock: StampClock,
             every_s: float) -> TradingSession:
    trader = TraderConfig(exchange="binance", symbols=("BTC/USDT",), timeframe="1h", strategies=({"kind": CHURN},))
    cfg = SessionConfig(account_id="stamps", mode="paper", venue=CcxtVenueConfig(), poll_interval_s=0.01,
                        kill=KillSwitchConfig(stale_bars=None))
    return TradingSession(trader, cfg, TradeStore(f"sqlite:///{tmp_path}/j.db"), exchange=venue, stages=sink,
                          stamp_every_s=every_s, stamp_clock=clock)


def test_every_order_a_paper_session_sends_on_a_bar_is_stamped_for_that_bar_at_the_injected_clock(
        shared_data: Path, tmp_path: Path) -> None:
    rows = _rows(shared_data, 40)
    venue = ReplayVenue(rows, visible=10)
    clock = StampClock(venue, delay_s=7.25)
    sink = ListSink()
    s = _session(venue, tmp_path, sink, clock, every_s=10 * 365 * 86400)  # the stamp clock moves 1 h a bar
    s._stop = threading.Event()
    s.start()
    answered: dict[str, datetime] = {}  # client id -> open time of the bar the order was sent on
    for visible in range(11, 41):
        venue.visible = visible
        seen = set(s.node.orders)
        s.step()
        s.order_stages.maybe_flush()
        bar_open = datetime.fromtimestamp(rows[visible - 1][0] / 1000, UTC)
        answered |= {cid: bar_open for cid in s.node.orders if cid not in seen}
    assert s.bars_traded == 30
    assert sink.appends == []  # buffered: appended every ten years of the stamp clock, or at the stop
    s.stop()
    assert len(sink.appends) == 1
    out = sink.rows
    assert list(out.columns) == list(BAR_STAGES.column_names) and set(out["stage"]) == {"order"}
    assert not s.node.rejections and len(answered) >= 20  # churn trades on most bars, nothing refused by risk
    assert set(s.node.orders) == set(answered)  # every order was sent on one of the stepped bars
    assert len(out) == len(answered) == s.order_stages.stamped == s.order_stages.written
    assert (out["exchange"] == "binance").all() and (out["symbol"] == "BTC/USDT").all()
    assert (out["timeframe"] == "1h").all()
    expected = sorted(pd.Timestamp(t) for t in answered.values())
    assert sorted(out["ts"]) == expected  # the bar each order answered
    assert (out["bar_date"] == out["ts"].dt.date).all()
    close = out["ts"] + timedelta(hours=1)
    lat = (out["stage_time"] - close).dt.total_seconds()
    assert (lat >= 0).all() and lat.tolist() == pytest.approx([7.25] * len(out))  # sent 7.25 s after its bar closed
    filled = [o for o in s.node.orders.values() if o.status is OrderStatus.FILLED]
    assert filled  # the paper venue filled them: real orders, not intents
    h = s.metrics.registry
    assert h.get_sample_value("cryptolake_trader_close_to_sent_seconds_count", {"account": "stamps"}) == len(out)
    assert h.get_sample_value("cryptolake_trader_close_to_sent_seconds_sum", {"account": "stamps"}) == \
        pytest.approx(7.25 * len(out))


def test_warm_up_bars_answer_no_order_and_a_session_without_a_sink_writes_nothing(
        shared_data: Path, tmp_path: Path) -> None:
    rows = _rows(shared_data, 20)
    venue = ReplayVenue(rows, visible=12)
    clock = StampClock(venue, delay_s=0.5)
    s = _session(venue, tmp_path, None, clock, every_s=0)
    s._stop = threading.Event()
    s.start()  # the first poll only warms the node up (the start is the bar after it)
    assert s.order_stages.stamped == 0 and not s.node.orders
    for visible in range(13, 21):
        venue.visible = visible
        s.step()
        s.order_stages.maybe_flush()
    s.stop()
    assert s.order_stages.stamped == len(s.node.orders) > 0  # counted and observed...
    assert s.order_stages.written == 0 and s.order_stages.pending == 0  # ...never written
    assert s.metrics.registry.get_sample_value("cryptolake_trader_close_to_sent_seconds_count",
                                               {"account": "stamps"}) == len(s.node.orders)


def test_a_live_session_on_the_local_exchange_stamps_each_order_it_sent_and_no_order_risk_refused(
        shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ingest.localexchange.server import LocalExchange
    from tests.trader.live.conftest import SYMBOLS, venue_config
    from trader.risk import RiskConfig, SymbolLimits

    venue = LocalExchange(venue_config(shared_data))
    venue.start()
    try:
        venue.add_account("k-stamps", "s-stamps")
        monkeypatch.setenv("CRYPTOLAKE__TRADER__API_KEY", "k-stamps")
        monkeypatch.setenv("CRYPTOLAKE__TRADER__API_SECRET", "s-stamps")
        # ETH orders above 10 USDT are refused by risk (never sent): the churn strategy's ETH buys (60 USDT)
        risk = RiskConfig(per_symbol={"ETH/USDT": SymbolLimits(max_order_notional=10.0)})
        trader = TraderConfig(exchange="binance", symbols=tuple(SYMBOLS), timeframe="1h", risk=risk,
                              strategies=({"kind": CHURN},))
        cfg = SessionConfig(account_id="venue-stamps", mode="live", venue=CcxtVenueConfig(base_url=venue.base_url),
                            poll_interval_s=0.05, kill=KillSwitchConfig(stale_bars=None))
        sink = ListSink()
        s = TradingSession(trader, cfg, TradeStore(f"sqlite:///{tmp_path}/j.db"), stages=sink, stamp_every_s=0)
        s._stop = threading.Event()
        before = datetime.now(UTC)
        s.start()
        answered: dict[str, datetime] = {}
        for _ in range(4):
            seen = set(s.node.orders)
            for sid in ("BTCUSDT", "ETHUSDT"):
                venue.step(sid)
            s.step()
            s.order_stages.maybe_flush()  # every_s 0: after every loop
            s._persist()
            last = s.node.history[BTC][-1].open_time  # the one BTC bar this loop released
            answered |= {cid: last for cid in s.node.orders if cid not in seen}
        s.stop()
        after = datetime.now(UTC)
    finally:
        venue.stop()
    client = s.client
    sent = len(client.sent_marks)  # type: ignore[attr-defined]
    refused = {cid for cid, o in s.node.orders.items() if o.status is OrderStatus.REJECTED and not o.id}
    assert sent >= 3 and refused  # BTC orders sent to the venue, ETH buys refused by risk before sending
    out = sink.rows
    assert len(sink.appends) >= 2  # appended between loops
    assert len(out) == sent == s.order_stages.stamped == s.order_stages.written
    assert set(out["stage"]) == {"order"} and (out["exchange"] == "binance").all()
    assert set(out["symbol"]) == {"BTC/USDT"}  # only the sent orders: every ETH order was refused
    assert set(s.node.orders) - refused == {cid for cid in answered if cid not in refused}
    stamped_at = pd.to_datetime(out["stage_time"], utc=True)
    assert ((stamped_at >= pd.Timestamp(before).floor("us")) & (stamped_at <= pd.Timestamp(after))).all()
    bars = sorted({pd.Timestamp(answered[cid]) for cid in set(answered) - refused})
    assert sorted(set(out["ts"])) == bars  # each stamp is the bar its order was sent on
    lat = (stamped_at - (out["ts"] + timedelta(hours=1))).dt.total_seconds()
    assert (lat > 0).all()  # the replayed bars closed in the past


def test_trade_run_appends_the_order_stage_of_each_order_it_sent_to_the_lakes_bar_stages(
        shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`cryptolake trade run` (what `up` supervises) writes its stamps to ops.bar_stages with delta-rs."""
    import signal

    from deltalake import DeltaTable
    from typer.testing import CliRunner

    from cli.trade import app
    from cryptolake.settings import get_settings
    from ingest.localexchange.server import LocalExchange
    from pipeline.latency import bar_latency
    from tests.trader.live.conftest import venue_config
    from trader.orders import OrderJournal

    venue = LocalExchange(venue_config(shared_data))
    venue.start()
    venue.add_account("k-cli", "s-cli")
    monkeypatch.setenv("CRYPTOLAKE__TRADER__API_KEY", "k-cli")
    monkeypatch.setenv("CRYPTOLAKE__TRADER__API_SECRET", "s-cli")
    monkeypatch.setenv("CRYPTOLAKE__PATHS__LAKE_ROOT", str(tmp_path / "lake"))
    done = threading.Event()

    def step() -> None:  # the venue moves one hourly candle per symbol every 0.3 s
        while not done.wait(0.3):
            for sid in ("BTCUSDT", "ETHUSDT"):
                venue.step(sid)

    stepper = threading.Thread(target=step, daemon=True)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    url = f"sqlite:///{tmp_path}/cli.db"
    get_settings.cache_clear()
    try:
        stepper.start()
        res = CliRunner().invoke(app, ["run", "--strategy", CHURN, "--symbols", "BTC/USDT,ETH/USDT", "--live",
                                       "--account", "cli-stamps", "--base-url", venue.base_url, "--store-url", url,
                                       "--poll-interval", "0.1", "--bar-interval", "1.0", "--stale-bars", "30",
                                       "--max-orders-per-minute", "3600", "--max-bars", "8", "--no-alt",
                                       "--stamp-every", "0"])
        assert res.exit_code == 0, res.output
        settings = get_settings()
        table = DeltaTable(BAR_STAGES.path(settings)).to_pandas()
        report = bar_latency(settings)
    finally:
        done.set()
        stepper.join(timeout=5)
        venue.stop()
        get_settings.cache_clear()
        for s, h in handlers.items():
            signal.signal(s, h)
    journal = OrderJournal(TradeStore(url), "cli-stamps")
    sent = set(journal.orders)  # every order the live session sent (journaled ahead of the submit)
    assert len(sent) >= 4
    table["ts"] = pd.to_datetime(table["ts"], utc=True)
    assert len(table) == len(sent) and set(table["stage"]) == {"order"}
    assert (table["exchange"] == "binance").all() and set(table["symbol"]) <= {"BTC/USDT", "ETH/USDT"}
    assert report.order is not None and report.order.bars == table.groupby(["symbol", "ts"]).ngroups


def test_several_orders_on_one_bar_are_one_row_at_the_first_and_delta_rs_takes_the_append(tmp_path: Path) -> None:
    from deltalake import DeltaTable

    from tests.conftest import settings_in
    from tests.trader.test_order_stages import Clock, _order
    from trader.domain import Bar
    from trader.stages import DeltaStages, OrderStages

    settings = settings_in(tmp_path)
    clock = Clock(1_704_070_800.0)  # 2024-01-01 01:00 UTC: the close of the first bar
    stages = OrderStages(DeltaStages(settings), every_s=0, clock=clock)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    bars = [Bar("binance", sym, "1h", t0 + i * timedelta(hours=1), t0 + (i + 1) * timedelta(hours=1), 1.0, 1.0, 1.0,
                1.0, 1.0) for i in range(2) for sym in ("BTC/USDT", "ETH/USDT")]
    for k, bar in enumerate(bars):
        stages.answering(bar)
        clock.t += 0.25
        stages.on_sent(_order(f"a{k}"), None)
        clock.t += 0.25
        stages.on_sent(_order(f"b{k}"), None)  # a second order on the same bar (e.g. a rebalance's two legs)
    stages.answering(None)
    stages.on_sent(_order("between"), None)  # between bars: answers none
    stages.flush()
    assert stages.stamped == 8 and stages.written == 4 and stages.pending == 0
    table = DeltaTable(BAR_STAGES.path(settings)).to_pandas().sort_values(["ts", "symbol"]).reset_index(drop=True)
    assert table["symbol"].tolist() == ["BTC/USDT", "ETH/USDT"] * 2
    sent = pd.to_datetime(table["stage_time"], utc=True) - pd.Timestamp(t0)
    # the first order of each bar: 0.25 s after the previous bar's last, 1 h + 0.25 s ... from the first open
    assert [s.total_seconds() for s in sent] == [3600.25, 3600.75, 3601.25, 3601.75]
