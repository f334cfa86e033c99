"""Risk additions: trailing and ATR stops, volatility-target sizing, per-venue limit, cooldown after a loss.

Bars are SYNTHETIC (hand-made prices, so every level can be computed by hand); the node test at the end
runs the protective stop through the paper venue.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from trader.clock import SimClock
from trader.domain import Bar, Instrument, Order, OrderIntent, OrderStatus, Position, Rejection, Side
from trader.execution.paper import PaperConfig, PaperExecutionClient
from trader.node import TradingNode
from trader.portfolio import Portfolio
from trader.risk import AccountExposure, RiskConfig, RiskEngine
from trader.strategy import Strategy, StrategyConfig, StrategyContext

BTC = Instrument("gymcrypto", "BTC/USD", 2, 6)
T0 = datetime(2024, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)


def _bar(i: int, o: float, h: float, lo: float, c: float, symbol: str = "BTC/USD") -> Bar:
    return Bar("gymcrypto", symbol, "1h", T0 + i * H, T0 + (i + 1) * H, o, h, lo, c, 1.0)


def _long(qty: float = 1.0, avg: float = 100.0) -> Position:
    return Position("gymcrypto", "BTC/USD", qty=qty, avg_price=avg)


def test_trailing_stop_follows_the_high_water_mark_and_triggers_through_it() -> None:
    risk = RiskEngine(RiskConfig(max_drawdown_pct=None, trailing_stop_pct=0.1))
    bars = [_bar(0, 100, 105, 99, 104), _bar(1, 104, 110, 95, 108), _bar(2, 108, 109, 98.9, 99)]
    assert risk.on_bar(bars[0], _long()) is None  # level 90 (100 x 0.9) before the bar; peak -> 105
    assert risk.stop_level("gymcrypto:BTC/USD") == pytest.approx(94.5)
    assert risk.on_bar(bars[1], _long()) is None  # low 95 > 94.5; peak -> 110
    assert risk.stop_level("gymcrypto:BTC/USD") == pytest.approx(99.0)
    reason = risk.on_bar(bars[2], _long())
    assert reason is not None and "bar low 98.9 through stop 99" in reason and "trailing_stop_pct 0.1" in reason
    short = RiskEngine(RiskConfig(max_drawdown_pct=None, trailing_stop_pct=0.1))
    pos = Position("gymcrypto", "BTC/USD", qty=-1.0, avg_price=100.0)
    assert short.on_bar(_bar(0, 100, 101, 90, 91), pos) is None  # level 110; trough -> 90
    assert short.stop_level("gymcrypto:BTC/USD") == pytest.approx(99.0)
    assert short.on_bar(_bar(1, 91, 99.5, 91, 99), pos) is not None  # high 99.5 >= 99
    assert short.on_bar(_bar(2, 99, 99, 99, 99), Position("gymcrypto", "BTC/USD")) is None  # flat: stop cleared
    assert short.stop_level("gymcrypto:BTC/USD") is None


def test_atr_stop_is_fixed_at_entry_and_trailing_atr_follows_the_peak() -> None:
    # true ranges of bars 1 and 2: max(h-l, |h-prev c|, |l-prev c|) = 4 and 6 -> ATR(2) = 5
    hist = [_bar(0, 100, 101, 99, 100), _bar(1, 100, 103, 99, 102), _bar(2, 102, 104, 98, 103)]
    risk = RiskEngine(RiskConfig(max_drawdown_pct=None, atr_stop_mult=2.0, atr_period=2))
    assert risk.on_bar(hist[2], _long(avg=102.0), hist) is None  # level 102 - 2 x 5 = 92; low 98
    assert risk.stop_level("gymcrypto:BTC/USD") == pytest.approx(92.0)
    later = [*hist, _bar(3, 103, 120, 100, 119)]
    assert risk.on_bar(later[3], _long(avg=102.0), later) is None
    assert risk.stop_level("gymcrypto:BTC/USD", later) == pytest.approx(92.0)  # fixed: entry - 2 x entry ATR
    chandelier = RiskEngine(RiskConfig(max_drawdown_pct=None, atr_stop_mult=2.0, atr_period=2, atr_trailing=True))
    chandelier.on_bar(hist[2], _long(avg=102.0), hist)
    chandelier.on_bar(later[3], _long(avg=102.0), later)
    # peak 120 (bar 3's high); ATR of bars 2..3: (6 + max(20, 17, 3)) / 2 = 13 -> 120 - 26 = 94
    assert chandelier.stop_level("gymcrypto:BTC/USD", later) == pytest.approx(94.0)
    both = RiskEngine(RiskConfig(max_drawdown_pct=None, atr_stop_mult=2.0, atr_period=2, trailing_stop_pct=0.05))
    both.on_bar(hist[2], _long(avg=102.0), hist)  # trailing 102 x 0.95 = 96.9 beats ATR 92: the tighter wins
    assert both.stop_level("gymcrypto:BTC/USD") == pytest.approx(104 * 0.95)  # peak moved to 104 after the bar


def test_volatility_target_sizes_entries_down_to_the_target() -> None:
    risk = RiskEngine(RiskConfig(max_drawdown_pct=None, vol_target=0.5, vol_lookback=4))
    risk.instruments = {BTC.key: BTC}
    flat = Position("gymcrypto", "BTC/USD")
    big = OrderIntent.market("b1", BTC, Side.BUY, 10.0)
    early = risk.check(big, flat, 100.0, T0, AccountExposure(10_000.0))
    assert isinstance(early, Rejection) and "volatility unknown yet (vol_target needs 5 closes)" in early.reason
    closes = [100.0, 101.0, 99.99, 100.9899, 99.980001]  # returns +1 %, -1 %, +1 %, -1 %: stdev 0.01
    for i, c in enumerate(closes):
        risk.on_bar(_bar(i, c, c, c, c), flat)
    vol = 0.01 * math.sqrt(24 * 365)
    assert risk.volatility(BTC.key) == pytest.approx(vol, rel=1e-6)
    cap = 0.5 * 10_000.0 / vol  # the largest position: 5,342.17 USD
    small = risk.check(big, flat, 100.0, T0, AccountExposure(10_000.0))
    assert isinstance(small, Order) and small.qty == 10.0 and small.reason == ""  # 1,000 USD is within the cap
    huge = risk.check(OrderIntent.market("b2", BTC, Side.BUY, 80.0), flat, 100.0, T0, AccountExposure(10_000.0))
    assert math.floor(cap / 100.0 * 1e6) / 1e6 == 53.42173
    assert isinstance(huge, Order) and huge.qty == 53.42173 and "qty 80.0 -> 53.42173" in huge.reason
    held = risk.check(OrderIntent.market("b3", BTC, Side.BUY, 80.0), _long(50.0), 100.0, T0,
                      AccountExposure(10_000.0))
    assert isinstance(held, Order) and held.qty == 3.42173  # tops the 50 held up to the cap
    full = risk.check(OrderIntent.market("b4", BTC, Side.BUY, 1.0), _long(60.0), 100.0, T0, AccountExposure(10_000.0))
    assert isinstance(full, Rejection) and "vol_target 0.5 caps the position at 5342.17" in full.reason
    exit_ = risk.check(OrderIntent.market("s1", BTC, Side.SELL, 60.0), _long(60.0), 100.0, T0,
                       AccountExposure(10_000.0))
    assert isinstance(exit_, Order) and exit_.qty == 60.0  # exits are never sized


def test_per_venue_limit_counts_the_other_instruments_on_that_venue() -> None:
    risk = RiskEngine(RiskConfig(max_drawdown_pct=None, max_venue_notional=1000.0, per_venue={"kraken": 300.0}))
    flat = Position("gymcrypto", "BTC/USD")
    over = risk.check(OrderIntent.market("b", BTC, Side.BUY, 3.0), flat, 100.0, T0,
                      AccountExposure(10_000.0, 900.0, 2, other_venue_notional=800.0))
    assert isinstance(over, Rejection) and over.reason == ("venue gymcrypto: gross notional 1100.00 > "
                                                           "max_venue_notional 1000.0")
    ok = risk.check(OrderIntent.market("b", BTC, Side.BUY, 2.0), flat, 100.0, T0,
                    AccountExposure(10_000.0, 900.0, 2, other_venue_notional=800.0))
    assert isinstance(ok, Order)  # exactly 1000
    kraken = Instrument("kraken", "BTC/USD")
    k = risk.check(OrderIntent.market("k", kraken, Side.BUY, 4.0), Position("kraken", "BTC/USD"), 100.0, T0,
                   AccountExposure(10_000.0))
    assert isinstance(k, Rejection) and "venue kraken: gross notional 400.00 > max_venue_notional 300.0" in k.reason


def test_cooldown_after_a_losing_trade_refuses_entries_for_n_bars() -> None:
    risk = RiskEngine(RiskConfig(max_drawdown_pct=None, loss_cooldown_bars=2))
    flat = Position("gymcrypto", "BTC/USD")
    buy = OrderIntent.market("b", BTC, Side.BUY, 1.0)
    risk.on_bar(_bar(0, 100, 100, 100, 100), flat)
    risk.on_trade_closed(BTC.key, 5.0)  # a win: no cooldown
    assert risk.cooldown_left(BTC.key) == 0
    risk.on_trade_closed(BTC.key, -3.0)  # closed by the fills of the next bar, before it is seen
    risk.on_bar(_bar(1, 100, 100, 100, 100), flat)
    r = risk.check(buy, flat, 100.0, T0)
    assert isinstance(r, Rejection) and r.reason == ("BTC/USD: cooldown after a losing trade, 2 of "
                                                     "loss_cooldown_bars 2 bars left")
    assert isinstance(risk.check(OrderIntent.market("s", BTC, Side.SELL, 1.0), _long(), 100.0, T0), Order)
    risk.on_bar(_bar(2, 100, 100, 100, 100), flat)
    assert risk.cooldown_left(BTC.key) == 1 and isinstance(risk.check(buy, flat, 100.0, T0), Rejection)
    restored = RiskEngine(risk.config)
    restored.load_state(risk.state_dict())  # survives a restart
    assert restored.cooldown_left(BTC.key) == 1
    restored.on_bar(_bar(3, 100, 100, 100, 100), flat)
    assert restored.cooldown_left(BTC.key) == 0 and isinstance(restored.check(buy, flat, 100.0, T0), Order)


class _BuyOnce(StrategyConfig):
    kind: str = "tests.trader.test_risk_sizing:BuyOnce"


class BuyOnce(Strategy):
    """Buys 1 at bars 0 and 3 and rests a take-profit far above at bar 1 (SYNTHETIC behaviour)."""

    Config = _BuyOnce
    default_name = "once"

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> list[OrderIntent]:
        i = (bar.open_time - T0) // H
        if i == 1 and ctx.position(bar.instrument_key).qty:
            return [OrderIntent.limit(self.next_id("tp"), bar, Side.SELL, 1.0, 200.0, reduce_only=True)]
        return [OrderIntent.market(self.next_id("buy"), bar, Side.BUY, 1.0)] if i in (0, 3) else []


def test_protective_stop_in_the_node_cancels_orders_and_exits_at_the_next_open() -> None:
    client = PaperExecutionClient(PaperConfig(taker_fee_bps=0, maker_fee_bps=0, slippage_bps=0), [BTC])
    node = TradingNode([BuyOnce(_BuyOnce(), [BTC])], RiskEngine(RiskConfig(max_drawdown_pct=None,
                                                                           trailing_stop_pct=0.1)),
                       client, Portfolio(1_000.0, [BTC]), [BTC], clock=SimClock(), simulator=client)
    bars = [_bar(0, 100, 100, 100, 100), _bar(1, 100, 104, 99, 103), _bar(2, 103, 110, 102, 108),
            _bar(3, 108, 108, 98, 99), _bar(4, 97, 98, 96, 97)]
    for b in bars:
        node.on_event(b)
    # bar 1: bought at its open 100; tp rests. bar 2: peak 110. bar 3: low 98 < 99 -> stop: tp cancelled,
    # market sell sent (the strategy's buy of this bar refused), filled at bar 4's open 97
    orders = {o.client_id: o for o in node.all_orders()}
    assert orders["once-000002-tp"].status is OrderStatus.CANCELED
    stop = orders["once-000003-stop"]
    assert stop.status is OrderStatus.FILLED and stop.side is Side.SELL and stop.reduce_only and stop.qty == 1.0
    assert [(f.client_id, f.price) for f in node.fills] == [("once-000001-buy", 100.0), ("once-000003-stop", 97.0)]
    refused = [r.reason for r in node.rejections if r.intent.client_id == "once-000004-buy"]
    assert refused == ["BTC/USD: protective stop on this bar; orders wait for the next"]
    assert node.portfolio.positions[BTC.key].qty == 0.0 and node.counts["protective_stops"] == 1


def test_node_passes_the_venue_notional_of_the_other_instruments() -> None:
    eth = Instrument("gymcrypto", "ETH/USD", 2, 6)
    other = Instrument("kraken", "BTC/USD", 2, 6)
    client = PaperExecutionClient(PaperConfig(), [BTC, eth, other])
    node = TradingNode([BuyOnce(_BuyOnce(), [BTC])], RiskEngine(RiskConfig()), client,
                       Portfolio(10_000.0, [BTC, eth, other]), [BTC, eth, other], simulator=client)
    p = node.portfolio
    p.positions[eth.key] = Position("gymcrypto", "ETH/USD", qty=2.0, avg_price=50.0)
    p.positions[other.key] = Position("kraken", "BTC/USD", qty=1.0, avg_price=300.0)
    p.mark(eth.key, 60.0)
    got = node._exposure(BTC.key)
    assert (got.other_gross_notional, got.other_open_positions, got.other_venue_notional) == (420.0, 2, 120.0)
