"""Parity acceptance: the same strategy over the same bars, once with the paper client and once with the ccxt
client on the local exchange (real Binance BTC/USDT and ETH/USDT hourly candles), sends the same orders; the
parity report lists every fill that differs, with the venue's matching rule that explains it."""

from __future__ import annotations

import threading

import pytest

from trader.config import TraderConfig
from trader.execution.ccxt_client import CcxtVenueConfig
from trader.execution.paper import PaperConfig
from trader.killswitch import KillSwitchConfig
from trader.parity import parity_report
from trader.session import SessionConfig, TradingSession
from trader.store import TradeStore

from .conftest import SYMBOLS

PROBE = "tests/trader/live/probe.py:Probe"
PAPER = PaperConfig(taker_fee_bps=10, maker_fee_bps=10, slippage_bps=0)  # the venue's fee rates, no slippage
BARS = 8


def _session(venue, url: str, mode: str) -> TradingSession:
    trader = TraderConfig(exchange="binance", symbols=tuple(SYMBOLS), timeframe="1h", initial_cash=100_000,
                          strategies=({"kind": PROBE},), paper=PAPER)
    cfg = SessionConfig(account_id=f"parity-{mode}", mode=mode, venue=CcxtVenueConfig(base_url=venue.base_url),
                        poll_interval_s=0.05, kill=KillSwitchConfig(stale_bars=None))  # type: ignore[arg-type]
    s = TradingSession(trader, cfg, TradeStore(url))
    s._stop = threading.Event()
    return s


def test_paper_and_venue_send_the_same_orders_and_the_report_explains_every_fill_difference(
        venue, keys, tmp_path) -> None:
    paper = _session(venue, f"sqlite:///{tmp_path}/paper.db", "paper")
    live = _session(venue, f"sqlite:///{tmp_path}/live.db", "live")
    paper.start()
    live.start()
    for _ in range(BARS):  # lockstep: both sessions see each new candle of both symbols
        for sid in ("BTCUSDT", "ETHUSDT"):
            venue.step(sid)
        paper.step()
        live.step()
    live.step()  # adopt the venue's last fills
    assert paper.bars_traded == live.bars_traded == 2 * BARS
    p_orders = paper.node.all_orders()
    v_orders = list(live.client.journal.orders.values())
    report = parity_report(p_orders, paper.node.fills, v_orders, live.node.fills, paper=PAPER)
    print(report.render())
    assert report.same_orders, report.render()
    assert report.orders_paper == 2 * BARS  # one order per bar and symbol, none refused on either side
    diffs = {d.client_id: d for d in report.fill_differences}
    assert all("investigate" not in r for d in diffs.values() for r in d.reasons), report.render()
    buys = [o for o in v_orders if o.client_id.endswith("mbuy")]
    assert len(buys) == 4
    for o in buys:  # every market buy: the venue's fill is net of its fee in the base asset
        d = diffs[o.client_id]
        assert d.venue_qty == pytest.approx(o.qty * 0.999, abs=1e-8) and d.paper_qty == o.qty
        assert any("fee in the base asset" in r for r in d.reasons)
    sells = [o for o in v_orders if o.client_id.endswith("msell")]
    for o in sells:  # a market sell: same quantity; the price differs only where a close != the next open
        pf = [f for f in paper.node.fills if f.client_id == o.client_id]
        vf = [f for f in live.node.fills if f.client_id == o.client_id]
        assert sum(f.qty for f in pf) == pytest.approx(sum(f.qty for f in vf), abs=1e-12) == o.qty
        if o.client_id in diffs:
            assert diffs[o.client_id].reasons == (
                f"market order: the paper venue fills at the next bar's open with 0.0 bps slippage "
                f"({diffs[o.client_id].paper_price}); the venue fills on arrival against its book "
                f"({diffs[o.client_id].venue_price})",)
