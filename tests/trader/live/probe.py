"""A parity probe: orders that depend on the bars alone (SYNTHETIC behaviour, real candles).

Per instrument, bar ``i`` of the run: 0 mod 4 a market buy worth 100 USDT, 1 a limit buy 0.05 % below
the close, 2 a market sell worth 50 USDT, 3 cancels what it still has open and rests a limit sell worth
40 USDT 0.05 % above the close. Quantities are rounded down to 0.00001 (the markets' lot), prices to the
tick. Nothing depends on fills or positions, so two execution clients must see the same orders.
"""

from __future__ import annotations

from trader.domain import Bar, IntentAction, OrderIntent, Side, round_price, round_qty
from trader.strategy import Strategy, StrategyConfig, StrategyContext


class ProbeConfig(StrategyConfig):
    kind: str = "tests/trader/live/probe.py:Probe"


class Probe(Strategy):
    Config = ProbeConfig
    default_name = "probe"

    def __init__(self, config: ProbeConfig, instruments: list) -> None:
        super().__init__(config, instruments)
        self.bars: dict[str, int] = {}
        self.sent: dict[str, list[str]] = {}

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> list[OrderIntent]:
        key = bar.instrument_key
        i = self.bars[key] = self.bars.get(key, -1) + 1
        tick = ctx.instruments[key].price_decimals
        qty = lambda usdt: round_qty(usdt / bar.close, 5)  # noqa: E731
        out: list[OrderIntent]
        if i % 4 == 0:
            out = [OrderIntent.market(self.next_id("mbuy"), bar, Side.BUY, qty(100))]
        elif i % 4 == 1:
            out = [OrderIntent.limit(self.next_id("lbuy"), bar, Side.BUY, qty(60),
                                     round_price(bar.close * 0.9995, tick))]
        elif i % 4 == 2:
            out = [OrderIntent.market(self.next_id("msell"), bar, Side.SELL, qty(50))]
        else:
            out = [OrderIntent(IntentAction.CANCEL, cid, bar.exchange, bar.symbol) for cid in self.sent.get(key, [])]
            self.sent[key] = []
            out.append(OrderIntent.limit(self.next_id("lsell"), bar, Side.SELL, qty(40),
                                         round_price(bar.close * 1.0005, tick)))
        self.sent.setdefault(key, []).extend(o.client_id for o in out if not o.is_cancel)
        return out
