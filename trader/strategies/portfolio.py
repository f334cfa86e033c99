"""Portfolio: one account held at target weights across the node's instruments, rebalanced with costs.

At each close at which every instrument has a bar (the strategy acts on the bar of the last instrument in
its order, after the others' bars at the same instant), the strategy rebalances when it is due:

* first, as soon as every instrument has ``allocation.lookback + 1`` bars of history;
* on schedule, ``allocation.every_bars`` closes after the last rebalance;
* on drift, when an instrument's weight (its position at the close over the account's equity) is more
  than ``allocation.drift`` from its target.

A rebalance estimates the targets (:func:`trader.allocation.target_weights`, long-only in the node) from
the trailing ``lookback`` close-to-close returns of the history (point in time), and sends market orders
for the difference between ``target x equity x (1 - cash_reserve)`` and the position, sells first; buys
are capped by the free cash at that moment (what a sale frees is spent at the next rebalance), and
differences below ``min_trade`` of equity are not traded. Fills and costs are the venue's (next open,
slippage, taker fee). Each rebalance is recorded in :attr:`PortfolioStrategy.rebalances` with its reason
and targets (the tearsheet's allocation weights over time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from trader.allocation import AllocationConfig, target_weights
from trader.domain import Bar, Instrument, OrderIntent, OrderType, Side, round_qty
from trader.strategies.registry import register_strategy
from trader.strategy import Strategy, StrategyConfig, StrategyContext


class PortfolioConfig(StrategyConfig):
    """The allocation (method, constraints, schedule, drift) and the order sizing of the portfolio."""

    kind: str = "portfolio"
    allocation: AllocationConfig = AllocationConfig()
    cash_reserve: float = Field(default=0.01, ge=0.0, lt=1.0, description="Equity kept in cash for fees")
    min_trade: float = Field(default=0.005, ge=0.0, lt=1.0, description="Smallest difference traded (of equity)")

    @field_validator("allocation")
    @classmethod
    def _long_only(cls, v: AllocationConfig) -> AllocationConfig:
        if not v.long_only:
            raise ValueError("the node's portfolio is long-only (allocation.long_only=False is research only)")
        return v


@dataclass(frozen=True)
class Rebalance:
    """One rebalance: when, why and the target weights."""

    ts: datetime
    reason: str
    weights: dict[str, float]


@register_strategy("portfolio")
class PortfolioStrategy(Strategy):
    """Holds the node's instruments at the allocation's target weights."""

    Config = PortfolioConfig
    default_name = "pf"

    def __init__(self, config: PortfolioConfig, instruments: Sequence[Instrument]) -> None:
        super().__init__(config, instruments)
        self.cfg = config
        self.history_bars = config.allocation.lookback + 1
        self.order = list(self.instruments)
        self.target: dict[str, float] = {}
        self.since = 0
        self.rebalances: list[Rebalance] = []

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> list[OrderIntent]:
        if bar.instrument_key != self.order[-1]:
            return []
        hists = {k: ctx.history(k, self.history_bars) for k in self.order}
        if any(not h or h[-1].close_time != bar.close_time for h in hists.values()):
            return []  # an instrument has no bar at this instant: not a full close
        self.since += 1
        if any(len(h) < self.history_bars for h in hists.values()):
            return []
        if any(o.type is OrderType.MARKET for o in ctx.open_orders):
            return []  # the last rebalance's orders are on their way
        reason = self._due(ctx)
        if reason is None:
            return []
        closes = pd.DataFrame({k: pd.Series([b.close for b in h], index=[b.close_time for b in h])
                               for k, h in hists.items()})
        weights = target_weights(closes.pct_change().iloc[1:], self.cfg.allocation)
        self.target = {k: float(weights.get(k, 0.0)) for k in self.order}
        self.since = 0
        self.rebalances.append(Rebalance(bar.close_time, reason, dict(self.target)))
        return self._orders(ctx)

    def _weights(self, ctx: StrategyContext) -> dict[str, float]:
        eq = ctx.equity
        return {k: ctx.position(k).qty * (ctx.last_price(k) or 0.0) / eq if eq > 0 else 0.0 for k in self.order}

    def _due(self, ctx: StrategyContext) -> str | None:
        a = self.cfg.allocation
        if not self.target:
            return "initial"
        if a.every_bars is not None and self.since >= a.every_bars:
            return "schedule"
        held = self._weights(ctx)
        if a.drift is not None and max(abs(held[k] - self.target[k]) for k in self.order) > a.drift:
            return "drift"
        return None

    def _orders(self, ctx: StrategyContext) -> list[OrderIntent]:
        investable = ctx.equity * (1.0 - self.cfg.cash_reserve)
        sells: list[OrderIntent] = []
        buys: list[tuple[str, float]] = []
        for k in self.order:
            price = ctx.last_price(k)
            if not price:
                continue
            diff = self.target[k] * investable - ctx.position(k).qty * price
            if abs(diff) < self.cfg.min_trade * ctx.equity:
                continue
            inst = self.instruments[k]
            if diff < 0:
                qty = min(round_qty(-diff / price, inst.qty_decimals), ctx.position(k).qty)
                if qty > 0:
                    sells.append(OrderIntent.market(self.next_id("sell"), inst, Side.SELL, qty, reduce_only=True,
                                                    tag="rebalance"))
            else:
                buys.append((k, diff))
        free = max(ctx.cash - ctx.committed_cash(), 0.0) * (1.0 - self.cfg.cash_reserve)
        want = sum(d for _, d in buys)
        scale = min(1.0, free / want) if want > 0 else 0.0
        out = list(sells)
        for k, diff in buys:
            inst = self.instruments[k]
            price = ctx.last_price(k) or np.nan
            qty = round_qty(diff * scale / price, inst.qty_decimals)
            if qty > 0:
                out.append(OrderIntent.market(self.next_id("buy"), inst, Side.BUY, qty, tag="rebalance"))
        return out


def weights_frame(strategy: PortfolioStrategy) -> pd.DataFrame:
    """The target weights of every rebalance (index: time; columns: symbols), for the tearsheet."""
    rows = {r.ts: {k.partition(":")[2]: w for k, w in r.weights.items()} for r in strategy.rebalances}
    return pd.DataFrame.from_dict(rows, orient="index")
