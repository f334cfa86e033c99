"""A test strategy that keeps orders in every stage of their life (SYNTHETIC behaviour, real candles).

Per instrument, on every bar: flat and nothing open -> a market buy; long and nothing open -> a limit
sell a little above the close (it rests, may fill partly, then fully); an order resting two bars or
more is cancelled. Dust below one lot counts as flat (the venue charges a buy's fee in the base asset).
"""

from __future__ import annotations

from pydantic import Field

from trader.domain import Bar, OrderIntent, Side, round_price, round_qty
from trader.strategy import Strategy, StrategyConfig, StrategyContext


class ChurnConfig(StrategyConfig):
    kind: str = "tests/trader/live/churn.py:Churn"
    notional: float = Field(default=60.0, gt=0, description="Quote value of each buy")
    markup: float = Field(default=0.002, ge=0, description="Limit sell above the close by this fraction")
    lot: float = Field(default=0.00001, gt=0)


class Churn(Strategy):
    Config = ChurnConfig
    default_name = "churn"

    def __init__(self, config: ChurnConfig, instruments: list) -> None:
        super().__init__(config, instruments)
        self.p = config
        self.history_bars = 1
        self.resting: dict[str, int] = {}

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> list[OrderIntent]:
        key = bar.instrument_key
        inst = ctx.instruments[key]
        open_orders = ctx.orders_for(key)
        if open_orders:
            self.resting[key] = self.resting.get(key, 0) + 1
            if self.resting[key] >= 2:
                self.resting[key] = 0
                return [OrderIntent.cancel(o) for o in open_orders]
            return []
        pos = ctx.position(key)
        sellable = round_qty(pos.qty, 5)
        if sellable < self.p.lot:
            qty = round_qty(self.p.notional / bar.close, 5)
            return [OrderIntent.market(self.next_id("buy"), bar, Side.BUY, qty)]
        price = round_price(bar.close * (1 + self.p.markup), inst.price_decimals)
        if self.seq % 2:
            return [OrderIntent.limit(self.next_id("lsell"), bar, Side.SELL, sellable, price, reduce_only=True)]
        return [OrderIntent.market(self.next_id("msell"), bar, Side.SELL, sellable, reduce_only=True)]
