"""Risk engine states and limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from trader.domain import Instrument, Order, OrderIntent, Position, Rejection, Side
from trader.risk import RiskConfig, RiskEngine, TradingState

BTC = Instrument("gymcrypto", "BTC/USD")
T = datetime(2018, 1, 1, 12, tzinfo=UTC)
LONG = Position("gymcrypto", "BTC/USD", qty=2.0, avg_price=100.0)
FLAT = Position("gymcrypto", "BTC/USD")


def _buy(qty: float = 1.0, cid: str = "b") -> OrderIntent:
    return OrderIntent.market(cid, BTC, Side.BUY, qty)


def _sell(qty: float = 1.0, cid: str = "s") -> OrderIntent:
    return OrderIntent.market(cid, BTC, Side.SELL, qty)


def _cancel() -> OrderIntent:
    return OrderIntent.cancel(Order.from_intent(_buy(1.0, "old"), T))


def test_drawdown_beyond_limit_halts_and_only_cancels_and_exits_pass() -> None:
    risk = RiskEngine(RiskConfig(max_drawdown_pct=0.2))
    risk.on_equity(1000.0, T)
    risk.on_equity(1200.0, T + timedelta(hours=1))
    risk.on_equity(961.0, T + timedelta(hours=2))  # 19.9 % below the 1200 peak
    assert risk.state is TradingState.ACTIVE
    risk.on_equity(960.0, T + timedelta(hours=3))  # exactly 20 %
    assert risk.state is TradingState.HALTED
    assert "drawdown 0.2000" in risk.transitions[-1][2]
    rejected = risk.check(_buy(1.0), LONG, 100.0, T)
    assert isinstance(rejected, Rejection) and "HALTED (drawdown 0.2000" in rejected.reason
    assert isinstance(risk.check(_sell(1.0), LONG, 100.0, T), Order)  # an exit is never trapped by a halt
    assert isinstance(risk.check(_cancel(), LONG, 100.0, T), Order)
    risk.on_equity(5000.0, T + timedelta(days=3))  # a halt is sticky
    assert risk.state is TradingState.HALTED


def test_reducing_lets_only_reducing_orders_through() -> None:
    risk = RiskEngine(RiskConfig(max_drawdown_pct=None))
    risk.set_state(TradingState.REDUCING, T, "operator")
    assert isinstance(risk.check(_sell(1.0), LONG, 100.0, T), Order)
    assert isinstance(risk.check(_sell(2.0), LONG, 100.0, T), Order)
    flip = risk.check(_sell(3.0), LONG, 100.0, T)  # would flip to short: not a reduction
    add = risk.check(_buy(1.0), LONG, 100.0, T)
    open_ = risk.check(_buy(1.0), FLAT, 100.0, T)
    for r in (flip, add, open_):
        assert isinstance(r, Rejection) and "REDUCING" in r.reason
    assert isinstance(risk.check(_cancel(), LONG, 100.0, T), Order)


def test_daily_loss_switches_to_reducing_until_next_day() -> None:
    risk = RiskEngine(RiskConfig(max_drawdown_pct=None, max_daily_loss_pct=0.05))
    risk.on_equity(1000.0, T)
    risk.on_equity(940.0, T + timedelta(hours=2))
    assert risk.state is TradingState.REDUCING
    risk.on_equity(945.0, T + timedelta(days=1))
    assert risk.state is TradingState.ACTIVE


def test_order_and_position_notional_limits_name_the_limit() -> None:
    risk = RiskEngine(RiskConfig(max_order_notional=500.0, max_position_notional=250.0, max_drawdown_pct=None))
    too_big = risk.check(_buy(6.0), FLAT, 100.0, T)
    assert isinstance(too_big, Rejection) and "max_order_notional" in too_big.reason
    too_much = risk.check(_buy(1.0), LONG, 100.0, T)  # 3 * 100 > 250
    assert isinstance(too_much, Rejection) and "max_position_notional" in too_much.reason
    assert isinstance(risk.check(_sell(1.0), LONG, 100.0, T), Order)  # reductions are fine
    no_price = risk.check(_buy(1.0), FLAT, None, T)
    assert isinstance(no_price, Rejection) and "no price" in no_price.reason


def test_reduce_only_order_that_would_open_is_rejected() -> None:
    risk = RiskEngine(RiskConfig(max_drawdown_pct=None))
    intent = OrderIntent.stop("x", BTC, Side.SELL, 1.0, 90.0, reduce_only=True)
    rejected = risk.check(intent, FLAT, 100.0, T)
    assert isinstance(rejected, Rejection) and "reduce_only" in rejected.reason
    approved = risk.check(intent, LONG, 100.0, T)
    assert isinstance(approved, Order) and approved.reduce_only and approved.price == 90.0
