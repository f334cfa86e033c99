"""Moving-average crossover: long while the fast SMA of closes is above the slow one, flat otherwise.

Run it over the lake's bars with
``cryptolake backtest --strategy examples/sma_cross.py:SmaCross --symbols BTC/USD,ETH/USD``.
"""

from pydantic import Field

from trader.domain import Bar, OrderIntent, Side
from trader.strategy import Strategy, StrategyConfig, StrategyContext


class SmaCrossConfig(StrategyConfig):
    fast: int = Field(default=10, ge=1, description="Bars in the fast average")
    slow: int = Field(default=40, ge=2, description="Bars in the slow average")
    fraction: float = Field(default=0.45, gt=0, le=1, description="Share of equity per position")


class SmaCross(Strategy):
    Config = SmaCrossConfig
    default_name = "sma"

    def __init__(self, config: SmaCrossConfig, instruments: list) -> None:
        super().__init__(config, instruments)
        self.p, self.history_bars = config, config.slow

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> list[OrderIntent]:
        closes = [b.close for b in ctx.history(bar.instrument_key, self.p.slow)]
        if len(closes) < self.p.slow or ctx.orders_for(bar.instrument_key):
            return []
        up = sum(closes[-self.p.fast :]) / self.p.fast > sum(closes) / self.p.slow
        pos = ctx.position(bar.instrument_key)
        if up and pos.is_flat:
            qty = ctx.entry_qty(bar.instrument_key, self.p.fraction)
            return [OrderIntent.market(self.next_id("buy"), bar, Side.BUY, qty)] if qty > 0 else []
        if not up and pos.qty > 0:
            return [OrderIntent.market(self.next_id("sell"), bar, Side.SELL, pos.qty, reduce_only=True)]
        return []
