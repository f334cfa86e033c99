"""Domain validation names the field and the value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cryptolake.errors import DataValidationError
from trader.domain import Bar, Instrument, IntentAction, OrderIntent, OrderType, Side, Signal, round_qty

T = datetime(2018, 1, 1, tzinfo=UTC)


def test_bar_refuses_naive_time_and_inconsistent_prices() -> None:
    with pytest.raises(DataValidationError, match="open_time"):
        Bar("x", "BTC/USD", "30m", T.replace(tzinfo=None), T + timedelta(minutes=30), 1, 2, 1, 1, 0)
    with pytest.raises(DataValidationError, match=r"high=0\.5"):
        Bar("x", "BTC/USD", "30m", T, T + timedelta(minutes=30), 1, 0.5, 0.4, 1, 0)
    with pytest.raises(DataValidationError, match="close_time"):
        Bar("x", "BTC/USD", "30m", T, T + timedelta(minutes=31), 1, 2, 1, 1, 0)


def test_signal_before_its_bar_closes_is_look_ahead() -> None:
    with pytest.raises(DataValidationError, match="look-ahead"):
        Signal("x", "BTC/USD", "30m", T, 0.7, 1, "m", T + timedelta(minutes=29))
    assert Signal("x", "BTC/USD", "30m", T, 0.7, 1, "m", T + timedelta(minutes=30)).probability == 0.7


def test_intent_validation() -> None:
    with pytest.raises(DataValidationError, match="qty"):
        OrderIntent.market("c", Instrument("x", "BTC/USD"), Side.BUY, 0.0)
    with pytest.raises(DataValidationError, match="price"):
        OrderIntent(IntentAction.SUBMIT, "c", "x", "BTC/USD", Side.SELL, OrderType.STOP, 1.0)
    with pytest.raises(DataValidationError, match="action"):
        OrderIntent("submit", "c", "x", "BTC/USD")  # type: ignore[arg-type]
    stop = OrderIntent.stop("s", Instrument("x", "BTC/USD"), Side.SELL, 1.0, 90.0, reduce_only=True, oco_group="g")
    assert (stop.type, stop.price, stop.reduce_only, stop.oco_group) == (OrderType.STOP, 90.0, True, "g")
    limit = OrderIntent.limit("l", Instrument("x", "BTC/USD"), Side.SELL, 1.0, 110.0)
    assert (limit.type, limit.price, limit.is_cancel) == (OrderType.LIMIT, 110.0, False)


def test_round_qty_floors_to_lot_without_float_noise() -> None:
    assert round_qty(0.3, 1) == 0.3
    assert round_qty(1.23456789, 4) == 1.2345


def test_bar_applies_the_one_candle_rule_and_names_the_first_problem() -> None:
    # SYNTHETIC candles: each refused on the field cryptolake.bars names
    close = T + timedelta(minutes=30)
    cases = [((1, 2, 1, float("nan"), 0), "close"), ((1, 2, 1, 1, -1), "volume"), ((1, 2, 3, 1, 0), "high"),
             ((0, 2, 1, 1, 0), "open"), ((1, 2, 1.5, 1.8, 0), "low")]
    for (o, h, lo, c, v), field in cases:
        with pytest.raises(DataValidationError) as info:
            Bar("x", "BTC/USD", "30m", T, close, o, h, lo, c, v)
        assert info.value.field == field
    assert Bar("x", "BTC/USD", "30m", T, close, 1, 1, 1, 1, 0).volume == 0  # flat is consistent
