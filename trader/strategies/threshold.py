"""Threshold strategy: long while the latest signal is confident enough, flat otherwise.

Rules (all deterministic):

* One instance trades every symbol it is given; each symbol is traded on its own signals.
* A signal with ``probability >= threshold`` while flat sends a market buy sized at
  ``fraction`` of current *account* equity (default ``1/N`` for an account trading N symbols),
  capped at the free cash (cash not committed to other open buy orders) less ``cash_reserve``
  (room for fees and slippage, so several positions never overdraw the one cash balance),
  valued at the last close and rounded down
  to the lot size.
* A signal below the threshold cancels this instrument's open orders and, if long, sends a
  market sell of the whole position.
* When the entry fills, a stop-loss (STOP sell at ``entry * (1 - stop_loss_pct)``) and a
  take-profit (LIMIT sell at ``entry * (1 + take_profit_pct)``) are placed in one OCO group:
  when one fills the venue cancels the other. The paper venue checks them on every bar
  against the bar's low/high; if both could have triggered inside one bar the **stop is
  filled first** (we cannot know the intrabar path, so we assume the worse outcome).
* After a stop-out or take-profit the strategy stays flat until a *new* signal arrives
  (re-entering on the signal that was already acted on would defeat the stop).
* Orders are only ever sent from handlers, and the venue fills market orders at the open of
  the first bar that starts at or after the order's time. A signal for bar ``t`` is available
  at ``t``'s close at the earliest, so it can never fill inside bar ``t`` (no look-ahead).
"""

from __future__ import annotations

from pydantic import ConfigDict, Field, model_validator

from trader.domain import Bar, Fill, Instrument, OrderIntent, Side, Signal, round_price
from trader.strategies.registry import register_strategy
from trader.strategy import Strategy, StrategyConfig, StrategyContext

ENTRY, EXIT, STOP, TAKE_PROFIT = "entry", "exit", "stop", "take_profit"


class ThresholdConfig(StrategyConfig):
    """Parameters of :class:`ThresholdStrategy`. Percentages are fractions (0.02 = 2 %)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str = "threshold"
    threshold: float = Field(default=0.55, gt=0.0, le=1.0, description="Go long when probability >= this")
    fraction: float | None = Field(
        default=None, gt=0.0, le=1.0, description="Fraction of account equity per position; None = 1/N symbols"
    )
    cash_reserve: float = Field(
        default=0.01, ge=0.0, lt=1.0, description="Fraction of free cash an entry leaves unspent (fees, slippage)"
    )
    stop_loss_pct: float | None = Field(default=0.02, gt=0.0, lt=1.0, description="Stop below entry; None = no stop")
    take_profit_pct: float | None = Field(default=0.04, gt=0.0, description="Take profit above entry; None = none")

    @model_validator(mode="after")
    def _sane(self) -> ThresholdConfig:
        if self.threshold < 0.5:
            raise ValueError(f"threshold={self.threshold} below 0.5 would go long on a predicted down move")
        return self


@register_strategy("threshold")
class ThresholdStrategy(Strategy):
    """Long/flat per instrument from model probabilities, with stop-loss and take-profit."""

    Config = ThresholdConfig
    default_name = "thr"

    def __init__(self, config: ThresholdConfig, instruments: list[Instrument]) -> None:
        super().__init__(config, instruments)
        self.params = config
        self.fraction = config.fraction if config.fraction is not None else 1.0 / len(self.instruments)

    def _cancel_all(self, key: str, ctx: StrategyContext) -> list[OrderIntent]:
        return [OrderIntent.cancel(o) for o in ctx.orders_for(key)]

    def on_signal(self, signal: Signal, ctx: StrategyContext) -> list[OrderIntent]:
        key = signal.instrument_key
        inst = self.instruments.get(key)
        if inst is None:
            return []
        pos = ctx.position(key)
        if signal.probability >= self.params.threshold:
            if not pos.is_flat or ctx.orders_for(key):
                return []  # already long, or an entry is on its way
            qty = ctx.entry_qty(key, self.fraction, self.params.cash_reserve)
            if qty <= 0:
                return []  # no bar seen yet, or no free cash: the next signal will be acted on
            return [OrderIntent.market(self.next_id(ENTRY), inst, Side.BUY, qty, tag=ENTRY)]
        intents = self._cancel_all(key, ctx)
        if pos.qty > 0:
            intents.append(OrderIntent.market(self.next_id(EXIT), inst, Side.SELL, pos.qty, reduce_only=True, tag=EXIT))
        return intents

    def on_fill(self, fill: Fill, ctx: StrategyContext) -> list[OrderIntent]:
        key = fill.instrument_key
        inst = self.instruments.get(key)
        if inst is None:
            return []
        pos = ctx.position(key)
        p = self.params
        if fill.tag == ENTRY and pos.qty > 0:
            group = f"{self.name}-oco-{self.seq + 1:06d}"
            intents: list[OrderIntent] = []
            if p.stop_loss_pct is not None:
                trigger = round_price(fill.price * (1 - p.stop_loss_pct), inst.price_decimals)
                intents.append(OrderIntent.stop(self.next_id(STOP), inst, Side.SELL, pos.qty, trigger,
                                                reduce_only=True, oco_group=group, tag=STOP))
            if p.take_profit_pct is not None:
                limit = round_price(fill.price * (1 + p.take_profit_pct), inst.price_decimals)
                intents.append(OrderIntent.limit(self.next_id(TAKE_PROFIT), inst, Side.SELL, pos.qty, limit,
                                                 reduce_only=True, oco_group=group, tag=TAKE_PROFIT))
            return intents
        if fill.tag in (EXIT, STOP, TAKE_PROFIT) and pos.is_flat:
            return self._cancel_all(key, ctx)
        return []

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> list[OrderIntent]:
        # Protective orders rest at the venue, which checks them against each bar's range.
        return []
