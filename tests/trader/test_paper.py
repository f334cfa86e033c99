"""Paper venue fill rules on real candles: market at next open, stops with gaps, take-profit, costs."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.trader.conftest import btc_frame, to_bars
from trader.domain import Fill, Instrument, Liquidity, Order, OrderStatus, OrderType, Side
from trader.execution.paper import PaperConfig, PaperExecutionClient, apply_slippage, fee_for

INST = Instrument("gymcrypto", "BTC/USD", 2, 6)


def _client(**cfg: float) -> PaperExecutionClient:
    return PaperExecutionClient(
        PaperConfig(**{"taker_fee_bps": 0, "maker_fee_bps": 0, "slippage_bps": 0, **cfg}), [INST]
    )


def _order(cid: str, side: Side, typ: OrderType, qty: float, price: float | None, ts, **kw) -> Order:
    return Order(cid, "gymcrypto", "BTC/USD", side, typ, qty, price, ts, **kw)


def _run(client: PaperExecutionClient, bar) -> list[Fill]:
    fills: list[Fill] = []
    client.process_bar(bar, fills.append)
    return fills


def test_market_order_sent_at_close_fills_at_next_bar_open() -> None:
    b0, b1 = to_bars(btc_frame(2))
    client = _client()
    client.submit(_order("m1", Side.BUY, OrderType.MARKET, 1.0, None, b0.close_time), b0.close_time)
    fills = _run(client, b1)
    assert [(f.price, f.ts) for f in fills] == [(b1.open, b1.open_time)]
    assert client.query("m1").status is OrderStatus.FILLED


def test_market_order_never_fills_in_a_bar_that_opened_before_it() -> None:
    b0, b1 = to_bars(btc_frame(2))
    client = _client()
    client.submit(_order("m1", Side.BUY, OrderType.MARKET, 1.0, None, b0.close_time), b0.close_time)
    assert _run(client, b0) == []  # b0 opened before the order existed
    assert len(_run(client, b1)) == 1


def test_stop_loss_fills_at_trigger_when_low_reaches_it() -> None:
    b0, b1 = to_bars(btc_frame(2))
    trigger = round((b1.open + b1.low) / 2, 2)  # between the open and the low: touched intrabar
    client = _client()
    client.submit(_order("s1", Side.SELL, OrderType.STOP, 1.0, trigger, b0.close_time), b0.close_time)
    (fill,) = _run(client, b1)
    assert fill.price == trigger and fill.ts == b1.close_time and fill.liquidity is Liquidity.TAKER


def test_stop_loss_fills_at_open_when_bar_gaps_below_trigger() -> None:
    b0, b1 = to_bars(btc_frame(2))
    trigger = round(b1.open + 5.0, 2)  # the bar opens below the stop: a gap through it
    client = _client()
    client.submit(_order("s1", Side.SELL, OrderType.STOP, 1.0, trigger, b0.close_time), b0.close_time)
    (fill,) = _run(client, b1)
    assert fill.price == b1.open and fill.ts == b1.open_time


def test_stop_not_triggered_when_low_stays_above() -> None:
    b0, b1 = to_bars(btc_frame(2))
    client = _client()
    client.submit(_order("s1", Side.SELL, OrderType.STOP, 1.0, round(b1.low - 1, 2), b0.close_time), b0.close_time)
    assert _run(client, b1) == []
    assert client.query("s1").status is OrderStatus.ACCEPTED


def test_take_profit_fills_at_limit_as_maker() -> None:
    b0, b1 = to_bars(btc_frame(2))
    limit = round((b1.open + b1.high) / 2, 2)
    client = _client(maker_fee_bps=5)
    client.submit(_order("tp", Side.SELL, OrderType.LIMIT, 2.0, limit, b0.close_time), b0.close_time)
    (fill,) = _run(client, b1)
    assert fill.price == limit and fill.liquidity is Liquidity.MAKER
    assert fill.fee == pytest.approx(round(limit * 2.0 * 5 / 10_000, 8))


def test_stop_fills_first_when_stop_and_take_profit_hit_in_same_bar() -> None:
    b0, b1 = to_bars(btc_frame(2))
    assert b1.high > b1.open > b1.low
    stop, tp = round(b1.low + 0.01, 2), round(b1.high - 0.01, 2)
    client = _client()
    client.submit(_order("tp", Side.SELL, OrderType.LIMIT, 1.0, tp, b0.close_time, oco_group="g"), b0.close_time)
    client.submit(_order("sl", Side.SELL, OrderType.STOP, 1.0, stop, b0.close_time, oco_group="g"), b0.close_time)
    fills = _run(client, b1)
    assert [(f.client_id, f.price) for f in fills] == [("sl", stop)]
    assert client.query("tp").status is OrderStatus.CANCELED


def test_fees_and_slippage_arithmetic() -> None:
    b0, b1 = to_bars(btc_frame(2))
    client = _client(taker_fee_bps=10, slippage_bps=20)
    client.submit(_order("b", Side.BUY, OrderType.MARKET, 0.5, None, b0.close_time), b0.close_time)
    client.submit(_order("s", Side.SELL, OrderType.MARKET, 0.5, None, b0.close_time), b0.close_time)
    buy, sell = _run(client, b1)
    assert buy.price == round(b1.open * 1.002, 2)
    assert sell.price == round(b1.open * 0.998, 2)
    assert buy.fee == round(buy.price * 0.5 * 0.001, 8)
    assert sell.fee == round(sell.price * 0.5 * 0.001, 8)
    assert apply_slippage(100.0, Side.BUY, 50) == pytest.approx(100.5)
    assert fee_for(20_000.0, 7.5) == 15.0


def test_latency_delays_eligibility() -> None:
    b0, b1, b2 = to_bars(btc_frame(3))
    client = _client(latency_ms=1)
    sent = b0.close_time  # == b1.open_time: with 1 ms latency it reaches the venue after b1 opened
    client.submit(_order("m", Side.BUY, OrderType.MARKET, 1.0, None, sent), sent)
    assert _run(client, b1) == []
    (fill,) = _run(client, b2)
    assert fill.price == b2.open and fill.ts == b2.open_time


def test_duplicate_client_id_is_rejected_with_reason() -> None:
    (b0,) = to_bars(btc_frame(1))
    client = _client()
    client.submit(_order("x", Side.BUY, OrderType.MARKET, 1.0, None, b0.close_time), b0.close_time)
    again = client.submit(_order("x", Side.BUY, OrderType.MARKET, 1.0, None, b0.close_time), b0.close_time)
    assert again.status is OrderStatus.REJECTED and "duplicate client_id" in again.reason


def test_reconcile_reports_positions_and_open_orders() -> None:
    b0, b1 = to_bars(btc_frame(2))
    client = _client()
    client.submit(_order("b", Side.BUY, OrderType.MARKET, 1.5, None, b0.close_time), b0.close_time)
    client.submit(_order("s", Side.SELL, OrderType.STOP, 1.5, 1.0, b0.close_time), b0.close_time)
    _run(client, b1)
    report = client.reconcile()
    assert report.positions == {"gymcrypto:BTC/USD": 1.5}
    assert [o.client_id for o in report.open_orders] == ["s"] and report.fills == 1
    canceled = client.cancel("s", b1.close_time + timedelta(seconds=1))
    assert canceled is not None and canceled.status is OrderStatus.CANCELED
    assert client.cancel("s", b1.close_time) is None
