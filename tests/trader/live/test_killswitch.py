"""Kill switches on a live session against the local exchange: stale data halts, cancels, survives restarts."""

from __future__ import annotations

import threading
import time

import pytest

from trader.config import TraderConfig
from trader.domain import OrderStatus
from trader.execution.ccxt_client import CcxtVenueConfig
from trader.killswitch import KillSwitchConfig, KillSwitches
from trader.risk import TradingState
from trader.session import SessionConfig, TradingSession
from trader.store import TradeStore

from .conftest import SYMBOLS
from .trading import CHURN


def _session(venue, url: str, **kill: object) -> TradingSession:
    trader = TraderConfig(exchange="binance", symbols=tuple(SYMBOLS), timeframe="1h",
                          strategies=({"kind": CHURN, "markup": 0.05},))
    cfg = SessionConfig(account_id="ks", mode="live", venue=CcxtVenueConfig(base_url=venue.base_url),
                        poll_interval_s=0.05, kill=KillSwitchConfig(bar_interval_s=0.5, **kill))  # type: ignore[arg-type]
    return TradingSession(trader, cfg, TradeStore(url))


def _bar(venue) -> None:
    for sid in ("BTCUSDT", "ETHUSDT"):
        venue.step(sid)


def test_stale_data_halts_cancels_open_orders_and_stays_halted_after_restart(venue, keys, tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/j.db"
    s = _session(venue, url, stale_bars=2)
    s._stop = threading.Event()
    s.start()
    for _ in range(2):  # market buys fill, then a limit sell 5 % above the close rests
        _bar(venue)
        s.step()
    resting = s.client.open_orders()
    assert resting and all(o.status is OrderStatus.ACCEPTED for o in resting)
    venue.faults.apply(stale=True)  # the market freezes: no bar any more
    _bar(venue)
    time.sleep(1.2)  # > stale_bars x bar_interval_s
    s.step()
    assert s.node.risk.state is TradingState.HALTED and "stale market data" in s.node.risk.halt_reason
    for o in resting:
        assert s.client.journal.orders[o.client_id].status is OrderStatus.CANCELED
        assert venue.engine.find(keys, o.symbol.replace("/", ""), client_order_id=o.client_id).status == "CANCELED"
    s.stop()
    venue.faults.apply(stale=False)
    again = _session(venue, url, stale_bars=2)  # a restart: still HALTED, with the reason, until reset
    again._stop = threading.Event()
    again.start()
    assert again.node.risk.state is TradingState.HALTED and "stale market data" in again.node.risk.halt_reason
    before = len(again.client.journal.orders)
    _bar(venue)
    again.step()
    new = [o for o in list(again.client.journal.orders.values())[before:] if o.side == "buy"]
    assert new == []  # HALTED: no entry is sent (exits still pass)
    again.journal.put(reset="test operator")
    _bar(venue)
    again.step()
    assert again.node.risk.state is TradingState.ACTIVE


def test_reject_rate_order_rate_and_venue_errors_switches() -> None:
    ks = KillSwitches(KillSwitchConfig(stale_bars=None, max_reject_rate=0.5, reject_window=4,
                                       max_orders_per_minute=100, max_consecutive_venue_errors=3), 60.0)
    for rejected in (False, True, False):
        ks.on_order(rejected)
    assert ks.check() is None  # fewer orders than the window
    ks.on_order(True)
    assert ks.check() == "reject rate 0.50 over the last 4 orders >= max_reject_rate 0.5"
    ks2 = KillSwitches(KillSwitchConfig(stale_bars=None, max_orders_per_minute=3), 60.0)
    for _ in range(4):
        ks2.on_order(False)
    assert ks2.check() == "order rate 4/min > max_orders_per_minute 3"
    assert KillSwitches(KillSwitchConfig(stale_bars=None, max_consecutive_venue_errors=3), 60.0).check(
        consecutive_venue_errors=3) == "3 consecutive venue errors >= max_consecutive_venue_errors 3"


def test_halt_with_flatten_cancels_open_orders_and_closes_positions_at_the_venue(venue, keys, tmp_path) -> None:
    s = _session(venue, f"sqlite:///{tmp_path}/j.db", flatten_on_halt=True)
    s._stop = threading.Event()
    s.start()
    for _ in range(2):  # market buys fill, then a limit sell 5 % above the close rests (or a market sell)
        _bar(venue)
        s.step()
    resting = s.client.open_orders()
    lots = {i.key: i.lot for i in s.instruments}
    held = {k: p.qty for k, p in s.node.portfolio.positions.items() if p.qty >= lots[k]}
    assert resting and {o.instrument_key for o in resting} <= set(held)
    s.journal.put(kill="test flatten")
    s.step()
    assert s.node.risk.state is TradingState.HALTED and s.node.risk.halt_reason == "manual kill: test flatten"
    for o in resting:
        assert s.client.journal.orders[o.client_id].status is OrderStatus.CANCELED
    flats = [o for o in s.client.journal.orders.values() if o.client_id.endswith("-flatten")]
    assert sorted(o.instrument_key for o in flats) == sorted(held)
    for o in flats:
        assert o.status is OrderStatus.FILLED and o.side == "sell" and o.reduce_only
        assert o.qty == pytest.approx(held[o.instrument_key], abs=0.00001)  # rounded down to the lot
    s.step()  # the flatten fills are adopted
    for key, pos in s.node.portfolio.positions.items():
        assert 0 <= pos.qty < lots[key], (key, pos.qty)  # flat: only dust below one lot remains
    bal = venue.engine.balances[keys]
    assert float(bal["BTC"].free + bal["BTC"].locked) < 0.00001 and float(bal["ETH"].free + bal["ETH"].locked) < 0.0001
    assert s.client.open_orders() == []
