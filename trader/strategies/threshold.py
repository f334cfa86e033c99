"""Threshold strategy: long while the latest signal is confident enough, flat otherwise.

Rules (all deterministic):

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

from pydantic import BaseModel, ConfigDict, Field, model_validator

from trader.domain import (
    Bar,
    Fill,
    Instrument,
    OrderIntent,
    OrderType,
    Side,
    Signal,
    round_price,
    round_qty,
)
from trader.strategy import Strategy, StrategyContext

ENTRY, EXIT, STOP, TAKE_PROFIT = "entry", "exit", "stop", "take_profit"


class ThresholdConfig(BaseModel):
    """Parameters of :class:`ThresholdStrategy`. Percentages are fractions (0.02 = 2 %)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    threshold: float = Field(default=0.55, gt=0.0, le=1.0, description="Go long when probability >= this")
    fraction: float | None = Field(
        default=None, gt=0.0, le=1.0, description="Fraction of account equity per position; None = 1/N symbols"
    )
    cash_reserve: float = Field(
        default=0.01, ge=0.0, lt=1.0, description="Fraction of free cash an entry leaves unspent (fees, slippage)"
    )
    stop_loss_pct: float | None = Field(default=0.02, gt=0.0, lt=1.0, description="Stop below entry; None = no stop")
    take_profit_pct: float | None = Field(default=0.04, gt=0.0, description="Take profit above entry; None = none")
    order_id_prefix: str = Field(default="thr", min_length=1, max_length=16, pattern=r"^[A-Za-z0-9_]+$")

    @model_validator(mode="after")
    def _sane(self) -> ThresholdConfig:
        if self.threshold < 0.5:
            raise ValueError(f"threshold={self.threshold} below 0.5 would go long on a predicted down move")
        return self


class ThresholdStrategy(Strategy):
    """Long/flat on one instrument from model probabilities, with stop-loss and take-profit.

    An account trading N symbols runs N instances (see :class:`trader.strategy.InstrumentRouter`):
    pass ``n_instruments`` for the default ``1/N`` sizing and a distinct ``name`` per instance so
    client order ids stay unique.
    """

    def __init__(
        self, config: ThresholdConfig, instrument: Instrument, *, n_instruments: int = 1, name: str | None = None
    ) -> None:
        if n_instruments < 1:
            raise ValueError(f"n_instruments={n_instruments} must be >= 1")
        self.config = config
        self.instrument = instrument
        self.fraction = config.fraction if config.fraction is not None else 1.0 / n_instruments
        self._name = name or config.order_id_prefix
        self._seq = 0

    @property
    def name(self) -> str:
        return self._name

    def _next_id(self, kind: str) -> str:
        self._seq += 1
        return f"{self.name}-{self._seq:06d}-{kind}"

    def _mine(self, key: str) -> bool:
        return key == self.instrument.key

    def _cancel_all(self, ctx: StrategyContext) -> list[OrderIntent]:
        inst = self.instrument
        return [OrderIntent("cancel", o.client_id, inst.exchange, inst.symbol) for o in ctx.orders_for(inst.key)]

    def on_signal(self, signal: Signal, ctx: StrategyContext) -> list[OrderIntent]:
        if not self._mine(signal.instrument_key):
            return []
        inst = self.instrument
        pos = ctx.position(inst.key)
        if signal.probability >= self.config.threshold:
            if not pos.is_flat or ctx.orders_for(inst.key):
                return []  # already long, or an entry is on its way
            price = ctx.last_price(inst.key)
            if price is None:
                return []  # no bar seen yet: cannot size; the next signal will be acted on
            free = ctx.cash - ctx.committed_cash()  # other symbols' entries not filled yet
            budget = min(self.fraction * ctx.equity, free * (1.0 - self.config.cash_reserve))
            if budget <= 0:
                return []  # no free cash: the other positions use it all
            qty = round_qty(budget / price, inst.qty_decimals)
            if qty <= 0:
                return []
            return [
                OrderIntent(
                    "submit",
                    self._next_id(ENTRY),
                    inst.exchange,
                    inst.symbol,
                    Side.BUY,
                    OrderType.MARKET,
                    qty,
                    tag=ENTRY,
                )
            ]
        intents = self._cancel_all(ctx)
        if pos.qty > 0:
            intents.append(
                OrderIntent(
                    "submit",
                    self._next_id(EXIT),
                    inst.exchange,
                    inst.symbol,
                    Side.SELL,
                    OrderType.MARKET,
                    pos.qty,
                    reduce_only=True,
                    tag=EXIT,
                )
            )
        return intents

    def on_fill(self, fill: Fill, ctx: StrategyContext) -> list[OrderIntent]:
        if not self._mine(fill.instrument_key):
            return []
        inst = self.instrument
        pos = ctx.position(inst.key)
        if fill.tag == ENTRY and pos.qty > 0:
            group = f"{self.name}-oco-{self._seq + 1:06d}"
            intents: list[OrderIntent] = []
            if self.config.stop_loss_pct is not None:
                trigger = round_price(fill.price * (1 - self.config.stop_loss_pct), inst.price_decimals)
                intents.append(
                    OrderIntent(
                        "submit",
                        self._next_id(STOP),
                        inst.exchange,
                        inst.symbol,
                        Side.SELL,
                        OrderType.STOP,
                        pos.qty,
                        trigger,
                        True,
                        group,
                        STOP,
                    )
                )
            if self.config.take_profit_pct is not None:
                limit = round_price(fill.price * (1 + self.config.take_profit_pct), inst.price_decimals)
                intents.append(
                    OrderIntent(
                        "submit",
                        self._next_id(TAKE_PROFIT),
                        inst.exchange,
                        inst.symbol,
                        Side.SELL,
                        OrderType.LIMIT,
                        pos.qty,
                        limit,
                        True,
                        group,
                        TAKE_PROFIT,
                    )
                )
            return intents
        if fill.tag in (EXIT, STOP, TAKE_PROFIT) and pos.is_flat:
            return self._cancel_all(ctx)
        return []

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> list[OrderIntent]:
        # Protective orders rest at the venue, which checks them against each bar's range.
        return []
