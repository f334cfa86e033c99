"""ML signal: trade the model's probability only where the expected edge beats the costs.

The strategy is long/flat per instrument on the model's signals: it enters when
``probability >= enter_threshold`` and exits when ``probability < exit_threshold`` (hysteresis:
``exit_threshold <= enter_threshold``, so a probability wobbling around one level does not pay the
round trip on every bar). Orders go out when a signal arrives (after the bar it is about has closed)
and fill at the next open, as every strategy's.

The thresholds are chosen by :func:`cost_aware_thresholds` on **validation** data only: for each
candidate pair it replays the rule on the validation probabilities and the next bars' open-to-open
returns, charging ``2 * (fee + slippage)`` per round trip, and keeps the pair with the largest net
return per bar, provided that it is positive and the rule traded at least ``min_trades`` times.
When no pair clears its costs the answer is "do not trade" (``enter_threshold = 1.0``), which is
the honest result for a model whose edge is smaller than its costs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from trader.domain import Fill, Instrument, OrderIntent, Side, Signal
from trader.strategies.registry import register_strategy
from trader.strategies.signal import ENTRY, EXIT, STOP, TAKE_PROFIT, SignalConfig, protective_orders
from trader.strategy import Strategy, StrategyContext


class MlSignalConfig(SignalConfig):
    """Thresholds on the model's probability of an up move (see :func:`cost_aware_thresholds`)."""

    kind: str = "mlsignal"
    enter_threshold: float = Field(default=0.6, ge=0.5, le=1.0, description="Enter at or above; 1.0 = never")
    exit_threshold: float = Field(default=0.5, ge=0.0, le=1.0, description="Exit below")
    expected_edge_bps: float | None = Field(default=None, description="Validation edge per bar held, net (report)")

    @model_validator(mode="after")
    def _hysteresis(self) -> MlSignalConfig:
        if self.exit_threshold > self.enter_threshold:
            raise ValueError(f"exit_threshold={self.exit_threshold} above enter_threshold={self.enter_threshold}")
        return self


@register_strategy("mlsignal")
class MlSignalStrategy(Strategy):
    """Long/flat on model probabilities with cost-aware, hysteretic thresholds."""

    Config = MlSignalConfig
    default_name = "ml"

    def __init__(self, config: MlSignalConfig, instruments: list[Instrument]) -> None:
        super().__init__(config, instruments)
        self.cfg = config
        self.fraction = config.fraction if config.fraction is not None else 1.0 / len(self.instruments)

    def on_signal(self, signal: Signal, ctx: StrategyContext) -> list[OrderIntent]:
        return ml_intents(self, self.cfg, signal, ctx, self.fraction, self.cfg.cash_reserve)

    def on_fill(self, fill: Fill, ctx: StrategyContext) -> list[OrderIntent]:
        key = fill.instrument_key
        inst = self.instruments.get(key)
        pos = ctx.position(key)
        if inst is None:
            return []
        if fill.tag == ENTRY and pos.qty > 0:
            return protective_orders(self, inst, fill.price, pos.qty, self.cfg.stop_loss_pct,
                                     self.cfg.take_profit_pct)
        if fill.tag in (EXIT, STOP, TAKE_PROFIT) and pos.is_flat:
            return [OrderIntent.cancel(o) for o in ctx.orders_for(key)]
        return []


def ml_intents(strategy: Strategy, cfg: MlSignalConfig, signal: Signal, ctx: StrategyContext, fraction: float,
               cash_reserve: float) -> list[OrderIntent]:
    """The ML-signal rule for one signal (shared by :class:`MlSignalStrategy` and the selector's ML member):
    enter when flat at ``enter_threshold`` or above, exit a long below ``exit_threshold``."""
    key = signal.instrument_key
    inst = strategy.instruments.get(key)
    if inst is None:
        return []
    pos = ctx.position(key)
    orders = ctx.orders_for(key)
    if pos.is_flat:
        if signal.probability < cfg.enter_threshold or cfg.enter_threshold >= 1.0 or orders:
            return []
        qty = ctx.entry_qty(key, fraction, cash_reserve)
        return [OrderIntent.market(strategy.next_id(ENTRY), inst, Side.BUY, qty, tag=ENTRY)] if qty > 0 else []
    if pos.qty > 0 and signal.probability < cfg.exit_threshold and not any(o.tag == EXIT for o in orders):
        intents = [OrderIntent.cancel(o) for o in orders]
        intents.append(OrderIntent.market(strategy.next_id(EXIT), inst, Side.SELL, pos.qty, reduce_only=True,
                                          tag=EXIT))
        return intents
    return []


@dataclass(frozen=True)
class ThresholdChoice:
    """The chosen thresholds and what they did on validation (net of costs)."""

    enter_threshold: float
    exit_threshold: float
    net_return_per_bar: float
    trades: int
    bars: int
    reason: str

    def config(self, **over: Any) -> MlSignalConfig:
        """An :class:`MlSignalConfig` with these thresholds (``over``: sizing, stops, name...)."""
        return MlSignalConfig(enter_threshold=self.enter_threshold, exit_threshold=self.exit_threshold,
                              expected_edge_bps=round(self.net_return_per_bar * 1e4, 4), **over)


def replay(probs: np.ndarray, next_returns: np.ndarray, enter: float, exit_: float, cost: float) -> tuple[float, int]:
    """Net log growth and round trips of the rule on one series (``next_returns[i]``: the return of
    holding from the open after signal ``i`` to the open after signal ``i + 1``)."""
    long = False
    growth = 0.0
    trades = 0
    for p, r in zip(probs, next_returns, strict=True):
        if not long and p >= enter:
            long, trades = True, trades + 1
            growth += np.log1p(-cost)
        elif long and p < exit_:
            long = False
            growth += np.log1p(-cost)
        if long and np.isfinite(r):
            growth += np.log1p(r)
    return float(growth), trades


def replay_trades(probs: np.ndarray, next_returns: np.ndarray, enter: float, exit_: float,
                  cost: float) -> list[tuple[int, float]]:
    """The rule's round trips on one series as ``(signal index of the entry, net log growth)``, as :func:`replay`
    charges them (a trade still open at the end is counted without its exit cost)."""
    out: list[tuple[int, float]] = []
    start, growth = -1, 0.0
    for i, (p, r) in enumerate(zip(probs, next_returns, strict=True)):
        if start < 0 and p >= enter:
            start, growth = i, float(np.log1p(-cost))
        elif start >= 0 and p < exit_:
            out.append((start, growth + float(np.log1p(-cost))))
            start = -1
        if start >= 0 and np.isfinite(r):
            growth += float(np.log1p(r))
    if start >= 0:
        out.append((start, growth))
    return out


def cost_aware_thresholds(
    series: list[tuple[np.ndarray, np.ndarray]], *, fee_bps: float, slippage_bps: float,
    enter_grid: tuple[float, ...] = tuple(np.round(np.arange(0.50, 0.81, 0.01), 2)),
    gaps: tuple[float, ...] = (0.0, 0.02, 0.05), min_trades: int = 5,
) -> ThresholdChoice:
    """The (enter, exit) pair with the best validation net return per bar, or "never" when none is positive.

    ``series`` holds, per instrument, the validation probabilities in time order and the next bars'
    open-to-open returns; each side of a round trip costs ``fee_bps + slippage_bps``.
    """
    cost = (fee_bps + slippage_bps) / 10_000
    bars = sum(len(p) for p, _ in series)
    best: tuple[float, float, float, int] | None = None
    for enter in enter_grid:
        for gap in gaps:
            exit_ = round(max(enter - gap, 0.0), 4)
            total, trades = 0.0, 0
            for probs, rets in series:
                g, n = replay(probs, rets, float(enter), exit_, cost)
                total, trades = total + g, trades + n
            per_bar = total / bars if bars else 0.0
            if trades >= min_trades and (best is None or per_bar > best[2]):
                best = (float(enter), exit_, per_bar, trades)
    if best is None or best[2] <= 0.0:
        seen = "no pair traded" if best is None else f"best pair {best[0]}/{best[1]} nets {best[2] * 1e4:.3f} bps/bar"
        return ThresholdChoice(1.0, 0.5, 0.0 if best is None else best[2], 0, bars,
                               f"do not trade: {seen} after {cost * 1e4:.1f} bps per side on validation")
    return ThresholdChoice(best[0], best[1], best[2], best[3], bars,
                           f"validation nets {best[2] * 1e4:.3f} bps/bar over {best[3]} round trips after costs")
