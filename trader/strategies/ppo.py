"""PPO policy strategy: hold the target position the policy's greedy action names, bar by bar.

The PPO agent (``models/ppo.py``) is scored like every model: its signal for bar ``t`` carries
``probability`` = the policy's probability of the long action for the feature window ending at
``t`` (``cryptolake train --model ppo`` registers it; the scorer publishes it). The policy's greedy
action is long when ``probability >= threshold`` (0.5: the more likely of its two actions), and this
strategy makes the account hold that target:

* target long while flat (no order on its way): market buy of ``fraction`` of account equity
  (default ``1/N`` symbols) at the last close, capped by free cash less ``cash_reserve``, rounded
  down to the lot (``StrategyContext.entry_qty``);
* target flat while long: cancel this instrument's open orders and sell the whole position;
* otherwise nothing. No stop-loss or take-profit: the policy was trained without them.

Orders fill at the next bar's open with the venue's slippage and taker fee, and the risk engine's
limits apply as to any strategy. ``models.env`` restates exactly these rules for training; the
test ``tests/trader/strategies/test_ppo_strategy.py`` runs a fixed action sequence through this
strategy on the node and through the env and requires the same equity.
"""

from __future__ import annotations

from pydantic import Field

from trader.domain import Instrument, OrderIntent, OrderType, Side, Signal
from trader.strategies.registry import register_strategy
from trader.strategy import Strategy, StrategyConfig, StrategyContext

ENTRY, EXIT = "entry", "exit"


class PpoStrategyConfig(StrategyConfig):
    """Sizing of :class:`PpoStrategy` (fractions: 0.01 = 1 %)."""

    kind: str = "ppo"
    threshold: float = Field(default=0.5, ge=0.5, le=1.0, description="Long when P(long action) >= this")
    fraction: float | None = Field(default=None, gt=0.0, le=1.0, description="Equity per position; None = 1/N")
    cash_reserve: float = Field(default=0.01, ge=0.0, lt=1.0, description="Free cash an entry leaves unspent")


@register_strategy("ppo")
class PpoStrategy(Strategy):
    """Long/flat target position from the PPO policy's signals."""

    Config = PpoStrategyConfig
    default_name = "ppo"

    def __init__(self, config: PpoStrategyConfig, instruments: list[Instrument]) -> None:
        super().__init__(config, instruments)
        self.cfg = config
        self.fraction = config.fraction if config.fraction is not None else 1.0 / len(self.instruments)

    def on_signal(self, signal: Signal, ctx: StrategyContext) -> list[OrderIntent]:
        key = signal.instrument_key
        inst = self.instruments.get(key)
        if inst is None:
            return []
        orders = ctx.orders_for(key)
        if any(o.type is OrderType.MARKET for o in orders):
            return []  # an entry or exit is on its way (only with venue latency)
        pos = ctx.position(key)
        if signal.probability >= self.cfg.threshold:
            if not pos.is_flat:
                return []
            qty = ctx.entry_qty(key, self.fraction, self.cfg.cash_reserve)
            return [OrderIntent.market(self.next_id(ENTRY), inst, Side.BUY, qty, tag=ENTRY)] if qty > 0 else []
        if pos.qty <= 0:
            return []
        intents = [OrderIntent.cancel(o) for o in orders]
        intents.append(OrderIntent.market(self.next_id(EXIT), inst, Side.SELL, pos.qty, reduce_only=True, tag=EXIT))
        return intents
