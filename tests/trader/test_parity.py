"""The parity report's rules on hand-made orders and fills (SYNTHETIC numbers)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from trader.domain import Fill, Liquidity, Order, OrderStatus, OrderType, Side
from trader.execution.paper import PaperConfig
from trader.parity import parity_report

T = datetime(2026, 1, 1, tzinfo=UTC)
PAPER = PaperConfig(slippage_bps=5)


def _o(cid: str, side: Side, kind: OrderType, qty: float, price: float | None = None) -> Order:
    return Order(cid, "binance", "BTC/USDT", side, kind, qty, price, T, OrderStatus.FILLED, id=f"v-{cid}")


def _f(cid: str, n: int, side: Side, price: float, qty: float, liq: Liquidity = Liquidity.TAKER) -> Fill:
    return Fill(f"{cid}-{n}", f"v-{cid}", cid, "binance", "BTC/USDT", side, price, qty, 0.0, "USDT", T, liq)


def test_report_names_the_matching_rule_of_each_difference() -> None:
    orders = [_o("s-1-mbuy", Side.BUY, OrderType.MARKET, 1.0),
              _o("s-2-lsell", Side.SELL, OrderType.LIMIT, 1.0, 110.0),
              _o("s-3-lsell", Side.SELL, OrderType.LIMIT, 0.5, 90.0),
              _o("s-4-lbuy", Side.BUY, OrderType.LIMIT, 1.0, 95.0),
              _o("s-5-msell", Side.SELL, OrderType.MARKET, 0.2)]
    paper = [_f("s-1-mbuy", 1, Side.BUY, 100.05, 1.0), _f("s-2-lsell", 1, Side.SELL, 110.0, 1.0, Liquidity.MAKER),
             _f("s-3-lsell", 1, Side.SELL, 101.0, 0.5, Liquidity.MAKER), _f("s-4-lbuy", 1, Side.BUY, 95.0, 1.0),
             _f("s-5-msell", 1, Side.SELL, 100.0, 0.2)]
    venue = [_f("s-1-mbuy", 1, Side.BUY, 100.0, 0.999),  # net of the 0.1 % base fee, at the book
             _f("s-2-lsell", 1, Side.SELL, 110.0, 0.3, Liquidity.MAKER),
             _f("s-2-lsell", 2, Side.SELL, 110.0, 0.4, Liquidity.MAKER),  # 0.7 of 1.0 printed at 110
             _f("s-3-lsell", 1, Side.SELL, 100.5, 0.5),  # crossed the book on arrival
             _f("s-5-msell", 1, Side.SELL, 100.0, 0.2)]  # the same: not listed
    r = parity_report(orders, paper, orders, venue, paper=PAPER)
    assert r.same_orders and r.fills_compared == 5
    d = {x.client_id: x for x in r.fill_differences}
    assert sorted(d) == ["s-1-mbuy", "s-2-lsell", "s-3-lsell", "s-4-lbuy"]
    assert d["s-1-mbuy"].reasons == (
        "the venue charges a buy's fee in the base asset: 0.999 received for 1.0 bought (0.10% fee); the paper venue "
        "charges it in the quote currency",
        "market order: the paper venue fills at the next bar's open with 5.0 bps slippage (100.05); the venue fills "
        "on arrival against its book (100.0)")
    assert d["s-2-lsell"].venue_qty == 0.7 and d["s-2-lsell"].venue_trades == 2
    assert d["s-2-lsell"].reasons[0].startswith("partially filled at the venue (2 trades, 0.7 of 1.0)")
    assert d["s-3-lsell"].reasons == ("marketable limit: the venue filled it on arrival against its book at 100.5; "
                                      "the paper venue fills it at the next bar (101.0)",)
    assert d["s-4-lbuy"].reasons[0].startswith("not filled at the venue")
    other = [replace(orders[0], qty=2.0), *orders[1:]]
    r2 = parity_report(orders, paper, other, venue, paper=PAPER)
    assert not r2.same_orders and r2.order_differences[0].startswith("s-1-mbuy: paper OrderKey(")
    assert "DIFFERENT" in r2.render()
