"""The live bar feed over the venue's websocket (ccxt.pro ``watch_ohlcv``) against the local exchange: bars
arrive without REST polling, and after a dropped connection REST fills the gap so no bar is lost."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from itertools import pairwise

from trader.config import TraderConfig
from trader.execution.ccxt_client import CcxtVenueConfig
from trader.feeds.ccxt_feed import WsBarFeed
from trader.killswitch import KillSwitchConfig
from trader.session import SessionConfig, TradingSession
from trader.store import TradeStore

from .conftest import SYMBOLS
from .trading import CHURN


def _bars_until(s: TradingSession, n: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while s.bars_traded < n and time.monotonic() < deadline:
        s.step()
        time.sleep(0.05)
    assert s.bars_traded >= n, f"{s.bars_traded} bars of {n} after {timeout}s"


def test_ws_feed_trades_on_streamed_bars_and_fills_the_gap_after_a_drop(venue, keys, tmp_path) -> None:
    trader = TraderConfig(exchange="binance", symbols=tuple(SYMBOLS), timeframe="1h",
                          strategies=({"kind": CHURN},))
    cfg = SessionConfig(account_id="ws", mode="live", venue=CcxtVenueConfig(base_url=venue.base_url),
                        poll_interval_s=0.05, bar_feed="ws", kill=KillSwitchConfig(stale_bars=None))
    s = TradingSession(trader, cfg, TradeStore(f"sqlite:///{tmp_path}/j.db"))
    s._stop = threading.Event()
    feed = s.feed
    assert isinstance(feed, WsBarFeed)
    seen = []
    orig = s.node.on_event
    s.node.on_event = lambda ev: (seen.append((ev.symbol, ev.open_time)), orig(ev))[1]  # type: ignore[method-assign]
    try:
        s.start()
        assert feed.rest_fetches == 2  # the warm-up, one REST fetch per symbol
        time.sleep(0.5)  # the watches subscribe
        for _ in range(3):
            for sid in ("BTCUSDT", "ETHUSDT"):
                venue.step(sid)
            time.sleep(0.2)
        _bars_until(s, 6)
        assert feed.rest_fetches == 2 and feed.ws_rows >= 6  # the 3 new bars per symbol came over the websocket
        assert venue.drop_websockets() >= 1
        for _ in range(2):  # these candles are published while the feed is disconnected
            for sid in ("BTCUSDT", "ETHUSDT"):
                venue.step(sid)
        _bars_until(s, 10)
        assert feed.drops >= 1 and feed.rest_fetches >= 3  # the drop was seen and REST filled the gap
        rows, rest = feed.ws_rows, feed.rest_fetches
        time.sleep(1.0)  # the watch reconnects (capped back-off)
        for sid in ("BTCUSDT", "ETHUSDT"):  # and new bars stream again over the new connection
            venue.step(sid)
        _bars_until(s, 12)
        assert feed.ws_rows > rows and feed.rest_fetches == rest
    finally:
        s.stop()
    traded = [(sym, t) for sym, t in seen if s.node.start_time is None or t >= s.node.start_time]
    for sym in SYMBOLS:
        times = [t for x, t in traded if x == sym]
        assert len(times) == 6 and all(b - a == timedelta(hours=1) for a, b in pairwise(times))  # none lost
    assert len(s.node.fills) > 0
