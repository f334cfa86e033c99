"""The trading node's exact results on real candles, pinned before the node was optimised.

The expected numbers below were computed by the pre-change node (branch node-speed, from main at 92df5c8)
and hard-coded: a speed-up of the node, the feed, the paper venue or the risk engine must reproduce every
one of them exactly (trade count, fills, final equity and cash to the last bit, first and last trade).
"""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from tests.trader.conftest import gym_candles
from trader.backtest import run_backtest
from trader.config import TraderConfig
from trader.execution.paper import PaperConfig
from trader.risk import RiskConfig


def _bench_config() -> TraderConfig:
    """bench/bench_event.py's node: Donchian 48/24, all equity, 10 bps fees, no slippage, no risk limits."""
    return TraderConfig(symbols=("BTC/USD",), price_decimals=8, max_flat_bars=None,  # type: ignore[call-arg]
                        strategy={"kind": "breakout", "channel": 48, "exit_channel": 24, "volume_mult": 0.0,
                                  "volume_period": 1, "atr_period": 1},
                        paper=PaperConfig(taker_fee_bps=10, maker_fee_bps=10, slippage_bps=0),
                        risk=RiskConfig(max_drawdown_pct=None))


def _protected_config() -> TraderConfig:
    """A breakout with OCO stop-loss / take-profit, an ATR trailing exit, slippage and the risk engine's stops."""
    return TraderConfig(symbols=("BTC/USD",), max_flat_bars=3,  # type: ignore[call-arg]
                        strategy={"kind": "breakout", "channel": 24, "exit_channel": 12, "volume_mult": 1.2,
                                  "volume_period": 24, "atr_period": 14, "atr_mult": 3.0,
                                  "stop_loss_pct": 0.02, "take_profit_pct": 0.04, "fraction": 0.5},
                        paper=PaperConfig(taker_fee_bps=10, maker_fee_bps=5, slippage_bps=5),
                        risk=RiskConfig(max_drawdown_pct=0.5, trailing_stop_pct=0.03, max_daily_loss_pct=0.05))


STATS = {"events": 8000, "other_instruments": 0, "other_model_versions": 0, "before_start": 0, "after_end": 0}
CASES = {
    # name: (config, closed trades, fills, final equity, final cash, first trade (entry, exit), last trade,
    #        digest of the fills, digest of the equity curve, stats); computed by the pre-change node
    "bench": (_bench_config, 51, 103, 17392.102985782403, 153.44816498240107,
              ("2017-10-02 01:00:00+00:00", "2017-10-03 05:30:00+00:00"),
              ("2018-03-11 17:30:00+00:00", "2018-03-12 15:00:00+00:00"),
              "397f70193993fd2c", "1c4b72c547cbdf55", STATS),
    "protected": (_protected_config, 166, 333, 9395.303069829995, 4684.438438629996,
                  ("2017-10-01 21:00:00+00:00", "2017-10-02 12:00:00+00:00"),
                  ("2018-03-15 14:00:00+00:00", "2018-03-15 15:30:00+00:00"),
                  "f03ac41cc50110fc", "4665edc1a83b6af8", {**STATS, "protective_stops": 40}),
}


def _digest(df: pd.DataFrame) -> str:
    return hashlib.sha256(df.to_csv(index=False, float_format="%.17g").encode()).hexdigest()[:16]


def _run(make: object) -> tuple[object, ...]:
    bars = gym_candles("BTC").iloc[:8000].assign(symbol="BTC/USD")
    res = run_backtest(bars, None, make(), run_id="pinned", persist_run=False)  # type: ignore[operator]
    tr = res.trades
    first = (str(tr.entry_time.iloc[0]), str(tr.exit_time.iloc[0]))
    last = (str(tr.entry_time.iloc[-1]), str(tr.exit_time.iloc[-1]))
    eq = res.equity.iloc[-1]
    fills = _digest(res.fills[["client_id", "side", "price", "qty", "fee", "ts", "liquidity", "tag"]])
    curve = _digest(res.equity[["ts", "equity", "cash", "gross_exposure", "risk_state"]])
    return len(tr), len(res.fills), float(eq.equity), float(eq.cash), first, last, fills, curve, dict(res.stats)


@pytest.mark.parametrize("name", sorted(CASES))
def test_node_reproduces_pinned_trades_and_equity_on_real_candles(name: str) -> None:
    make, *expected = CASES[name]
    assert _run(make) == tuple(expected)
