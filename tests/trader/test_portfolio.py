"""Portfolio booking on the venue's 8-decimal lot grid."""

from __future__ import annotations

from datetime import UTC, datetime

from trader.domain import Fill, Instrument, Liquidity, Side
from trader.portfolio import Portfolio

ETH = Instrument("binance", "ETH/USDT", 2, 8)
T = datetime(2026, 1, 1, tzinfo=UTC)


def _fill(i: int, side: Side, qty: float) -> Fill:
    return Fill(f"f{i}", f"o{i}", f"c{i}", "binance", "ETH/USDT", side, 2000.0, qty, 0.0, "USDT", T, Liquidity.TAKER)


def test_position_stays_on_the_lot_grid_without_losing_a_lot_to_float_noise() -> None:
    # 1.02941829 - 0.96253981 = 0.06687848 exactly; in floats it is 0.0668784799999..., which flooring to
    # the lot booked as 0.06687847 (the crash test's 2e-8 ETH mismatch with the venue's balance)
    p = Portfolio(100_000.0, [ETH])
    p.apply(_fill(1, Side.BUY, 1.02941829))
    pos = p.apply(_fill(2, Side.SELL, 0.96253981))
    assert pos.qty == 0.06687848
    assert p.apply(_fill(3, Side.SELL, 0.06687848)).qty == 0.0
