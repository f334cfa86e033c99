"""Threshold strategy through the whole engine on real candles with SYNTHETIC signals."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pandas as pd
import pytest

from cryptolake.errors import DataValidationError
from tests.trader.conftest import HALF_HOUR, btc_frame, make_config, synthetic_signals
from trader.backtest import run_backtest
from trader.execution.paper import PaperConfig
from trader.strategies.threshold import ThresholdConfig


def _run(bars: pd.DataFrame, probs: list[float], tmp_path, **cfg) -> Any:
    return run_backtest(
        bars, synthetic_signals(bars, probs), make_config(**cfg), run_id="t", store_url=f"sqlite:///{tmp_path}/t.db"
    )


def test_signal_fills_at_next_bar_open_never_on_its_own_bar(tmp_path) -> None:
    bars = btc_frame(6)
    result = _run(bars, [0.9, 0.9, 0.9, 0.9, 0.9, 0.9], tmp_path)
    (entry,) = result.fills.itertuples()
    # the first signal is about bar 0 and known at its close; the fill is bar 1's open
    assert entry.ts == bars.open_time[1]
    assert entry.price == bars.open[1]
    assert entry.ts > bars.open_time[0]


def test_late_signal_waits_for_the_following_bar(tmp_path) -> None:
    bars = btc_frame(4)
    sig = synthetic_signals(bars, [0.9, 0.1, 0.1, 0.1], delay=timedelta(seconds=5))
    result = run_backtest(bars, sig, make_config(), run_id="late", store_url=f"sqlite:///{tmp_path}/t.db")
    # scored 5 s after bar 0 closed: bar 1 had already opened, so the entry is bar 2's open;
    # the "flat" signal for bar 1 arrives before that fill and cancels the entry
    assert result.fills.empty
    assert list(result.orders.status) == ["canceled"]


def test_entry_sized_at_fraction_of_equity_and_exit_below_threshold(tmp_path) -> None:
    bars = btc_frame(5)
    result = _run(bars, [0.7, 0.7, 0.2, 0.2, 0.2], tmp_path)
    entry, exit_ = result.fills.itertuples()
    expected_qty = int(0.5 * 10_000 / bars.close[0] * 1e6) / 1e6  # floor to 6 decimals at the last close
    assert entry.qty == pytest.approx(expected_qty, abs=1e-12)
    assert (entry.side, exit_.side) == ("buy", "sell")
    assert exit_.ts == bars.open_time[3] and exit_.price == bars.open[3]
    cash = 10_000 - entry.qty * entry.price - entry.fee + exit_.qty * exit_.price - exit_.fee
    assert result.metrics["final_equity"] == pytest.approx(cash)
    assert result.metrics["n_trades"] == 1
    assert result.trades.pnl[0] == pytest.approx(cash - 10_000)


def test_stop_loss_exits_at_trigger_and_cancels_take_profit(tmp_path) -> None:
    bars = btc_frame(400)
    cfg = ThresholdConfig(threshold=0.6, fraction=0.5, stop_loss_pct=0.01, take_profit_pct=0.5)
    result = _run(bars, [0.9] * 400, tmp_path, strategy=cfg)
    entry = result.fills.iloc[0]
    stop = entry.price * 0.99
    hit = bars[(bars.open_time > entry.ts) & (bars.low <= round(stop, 2))].iloc[0]
    second = result.fills.iloc[1]
    assert second.tag == "stop"
    expected = hit.open if hit.open <= round(stop, 2) else round(stop, 2)
    assert second.price == expected
    tp = result.orders[result.orders.tag == "take_profit"].iloc[0]
    assert tp.status == "canceled"
    # stays flat after the stop until a new signal: the next signal re-enters at the next open
    third = result.fills.iloc[2]
    assert third.tag == "entry" and third.ts >= second.ts  # the stop is stamped at its bar's close
    assert third.price == bars.set_index("open_time").open[third.ts]


def test_take_profit_exit_as_maker(tmp_path) -> None:
    bars = btc_frame(400)
    cfg = ThresholdConfig(threshold=0.6, fraction=0.5, stop_loss_pct=0.5, take_profit_pct=0.005)
    result = _run(bars, [0.9] * 400, tmp_path, strategy=cfg)
    entry, tp = result.fills.iloc[0], result.fills.iloc[1]
    assert tp.tag == "take_profit" and tp.liquidity == "maker"
    assert tp.price >= round(entry.price * 1.005, 2)


def test_slippage_and_fees_flow_into_equity(tmp_path) -> None:
    bars = btc_frame(4)
    result = _run(
        bars, [0.9, 0.1, 0.1, 0.1], tmp_path, paper=PaperConfig(taker_fee_bps=25, maker_fee_bps=0, slippage_bps=30)
    )
    buy, sell = result.fills.itertuples()
    assert buy.price == round(bars.open[1] * 1.003, 2)
    assert sell.price == round(bars.open[2] * 0.997, 2)
    assert result.metrics["fees_paid"] == pytest.approx(buy.fee + sell.fee)
    assert buy.fee == pytest.approx(round(buy.price * buy.qty * 0.0025, 8))


def test_naive_timestamps_are_refused_naming_the_field() -> None:
    bars = btc_frame(3)
    bars["open_time"] = bars["open_time"].dt.tz_localize(None)
    with pytest.raises(DataValidationError, match="open_time"):
        run_backtest(bars, synthetic_signals(btc_frame(3), [0.5] * 3), make_config(), run_id="x", persist_run=False)


def test_signal_available_before_bar_close_is_refused_as_look_ahead() -> None:
    bars = btc_frame(3)
    sig = synthetic_signals(bars, [0.9] * 3)
    sig.loc[1, "available_time"] = bars.open_time[1] + HALF_HOUR - timedelta(minutes=1)
    with pytest.raises(DataValidationError, match="available_time"):
        run_backtest(bars, sig, make_config(), run_id="x", persist_run=False)


def test_duplicate_bars_are_refused() -> None:
    bars = btc_frame(3)
    dup = pd.concat([bars, bars.iloc[[1]]], ignore_index=True)
    with pytest.raises(DataValidationError, match="duplicate"):
        run_backtest(dup, synthetic_signals(bars, [0.5] * 3), make_config(), run_id="x", persist_run=False)


def test_drawdown_halt_in_a_backtest_rejects_new_entries_with_reason(tmp_path) -> None:
    from trader.risk import RiskConfig

    bars = btc_frame(600)
    probs = [0.9 if i % 2 == 0 else 0.1 for i in range(600)]  # SYNTHETIC churn: loses to fees
    result = _run(
        bars,
        probs,
        tmp_path,
        risk=RiskConfig(max_drawdown_pct=0.01),
        paper=PaperConfig(taker_fee_bps=30, maker_fee_bps=30, slippage_bps=10),
    )
    halted = result.equity[result.equity.risk_state == "halted"]
    assert not halted.empty
    first_halt = halted.ts.iloc[0]
    after = result.fills[result.fills.ts > first_halt]
    assert (after.side == "sell").all()  # after the halt only exits trade (a halt never traps a position)
    later = result.rejections[result.rejections.ts >= first_halt]
    assert len(later) > 0 and later.reason.str.contains("HALTED").all()
    assert (result.equity.equity.iloc[: len(result.equity) - len(halted)] > 0).all()
