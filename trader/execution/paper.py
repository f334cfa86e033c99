"""Paper venue: deterministic simulated fills from bars, with fees, slippage and latency.

Fill rules (a bar is processed when it closes; "eligible" = submitted at least ``latency_ms``
before the bar's open):

1. **Market orders** fill at the bar's *open*, moved against us by ``slippage_bps``
   (buy higher, sell lower), as takers. A market order sent at a bar's close therefore fills
   at the next bar's open: never inside the bar that produced the decision.
2. **Stop orders** (stop-loss): if the bar *opens* beyond the trigger (gap), fill at the open;
   otherwise if the bar's low (sell) / high (buy) reaches the trigger, fill at the trigger.
   Slippage applies (a triggered stop is a market order); taker fee.
3. **Limit orders** (take-profit): if the bar opens through the limit, fill at the open (price
   improvement); otherwise if the high (sell) / low (buy) reaches it, fill at the limit.
   No slippage; maker fee.
4. Within one bar all eligible stops are processed before any limit, so when a stop-loss and a
   take-profit could both have triggered, the **stop fills first** and its OCO sibling is
   cancelled. Without intrabar data this assumes the worse path.

Fill prices are rounded to the instrument's tick; fees to 8 decimals, in the quote currency.
Intrabar fills are stamped with the bar's close time (when they become known); open fills
with its open time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from cryptolake.errors import OrderNotFoundError
from cryptolake.logs import get_logger
from trader.domain import (
    FEE_DECIMALS,
    Bar,
    Fill,
    Instrument,
    Liquidity,
    Order,
    OrderStatus,
    OrderType,
    Side,
    round_price,
)
from trader.execution.base import ExecutionClient, FillHandler, ReconcileReport

log = get_logger(__name__)


class PaperConfig(BaseModel):
    """Costs and latency of the simulated venue (basis points: 10 bps = 0.1 %)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    taker_fee_bps: float = Field(default=10.0, ge=0, le=1000)
    maker_fee_bps: float = Field(default=10.0, ge=0, le=1000)
    slippage_bps: float = Field(default=5.0, ge=0, le=1000)
    latency_ms: int = Field(default=0, ge=0, description="Orders reach the venue this long after being sent")
    fee_currency: str = Field(default="USD", min_length=1)


def apply_slippage(price: float, side: Side, slippage_bps: float) -> float:
    """Move ``price`` against the taker by ``slippage_bps``."""
    factor = slippage_bps / 10_000
    return price * (1 + factor) if side is Side.BUY else price * (1 - factor)


def fee_for(notional: float, fee_bps: float) -> float:
    """Fee on ``notional`` at ``fee_bps``, rounded to 8 decimals."""
    return round(notional * fee_bps / 10_000, FEE_DECIMALS)


class PaperExecutionClient(ExecutionClient):
    """Simulated venue for backtests and paper trading (the same object in both)."""

    def __init__(self, config: PaperConfig, instruments: Iterable[Instrument]) -> None:
        self.config = config
        self.instruments = {i.key: i for i in instruments}
        self._orders: dict[str, Order] = {}  # by client id, in submission order
        self._open: dict[str, Order] = {}  # the open subset, so each bar costs O(open orders)
        self._seq = 0
        self._fills = 0
        self._positions: dict[str, float] = {}
        self._latency = timedelta(milliseconds=config.latency_ms)

    # --- ExecutionClient ------------------------------------------------------------
    def submit(self, order: Order, ts: datetime) -> Order:
        if order.client_id in self._orders:
            rejected = replace(
                order,
                status=OrderStatus.REJECTED,
                updated_at=ts,
                reason=f"duplicate client_id {order.client_id!r}",
            )
            return rejected
        if order.instrument_key not in self.instruments:
            return replace(
                order,
                status=OrderStatus.REJECTED,
                updated_at=ts,
                reason=f"unknown instrument {order.instrument_key!r}",
            )
        self._seq += 1
        accepted = replace(order, id=f"P{self._seq:08d}", status=OrderStatus.ACCEPTED, created_at=ts, updated_at=ts)
        self._orders[order.client_id] = accepted
        self._open[order.client_id] = accepted
        return replace(accepted)

    def cancel(self, client_id: str, ts: datetime) -> Order | None:
        order = self._orders.get(client_id)
        if order is None or not order.is_open:
            return None
        order.status, order.updated_at = OrderStatus.CANCELED, ts
        self._open.pop(client_id, None)
        return replace(order)

    def query(self, client_id: str) -> Order:
        try:
            return replace(self._orders[client_id])
        except KeyError as exc:
            raise OrderNotFoundError(f"paper venue has no order with client_id={client_id!r}") from exc

    def open_orders(self, instrument_key: str | None = None) -> list[Order]:
        return [replace(o) for o in self._open.values() if instrument_key is None or o.instrument_key == instrument_key]

    def reconcile(self, on_fill: FillHandler | None = None) -> ReconcileReport:
        return ReconcileReport(tuple(self.open_orders()), {k: v for k, v in self._positions.items() if v}, self._fills)

    def process_bar(self, bar: Bar, on_fill: FillHandler) -> None:
        if not self._open:
            return  # nothing rests at the venue: the common bar
        key = bar.instrument_key
        # 1. market orders at the open (loop: fills may cause new eligible market orders)
        while True:
            order = self._next_eligible(key, bar, (OrderType.MARKET,))
            if order is None:
                break
            price = apply_slippage(bar.open, order.side, self.config.slippage_bps)
            self._fill(order, price, bar.open_time, Liquidity.TAKER, on_fill)
        # 2. stops before limits (the documented "stop first" rule)
        for kind in (OrderType.STOP, OrderType.LIMIT):
            for client_id in [o.client_id for o in self._open.values() if o.type is kind and o.instrument_key == key]:
                order = self._orders[client_id]
                if not order.is_open or not self._eligible(order, bar):
                    continue
                hit = self._trigger(order, bar)
                if hit is None:
                    continue
                price, ts = hit
                if kind is OrderType.STOP:
                    self._fill(
                        order,
                        apply_slippage(price, order.side, self.config.slippage_bps),
                        ts,
                        Liquidity.TAKER,
                        on_fill,
                    )
                else:
                    self._fill(order, price, ts, Liquidity.MAKER, on_fill)

    # --- carrying the venue across runs (trader.snapshot) ----------------------------------
    def counters(self) -> dict[str, int]:
        """The venue's numbering: next order ids must not repeat earlier runs' ids."""
        return {"seq": self._seq, "fills": self._fills}

    def restore(self, orders: Iterable[Order], positions: dict[str, float], counters: dict[str, int]) -> None:
        """Rest ``orders`` (open, with their venue ids) and ``positions`` at a fresh venue."""
        if self._orders:
            raise ValueError("restore into a fresh paper venue only")
        for order in orders:
            if not order.is_open or not order.id:
                raise ValueError(f"order {order.client_id!r} is not an open venue order")
            self._orders[order.client_id] = self._open[order.client_id] = replace(order)
        self._positions = dict(positions)
        self._seq, self._fills = int(counters["seq"]), int(counters["fills"])

    # --- internals ----------------------------------------------------------------------
    def _eligible(self, order: Order, bar: Bar) -> bool:
        return order.created_at + self._latency <= bar.open_time

    def _next_eligible(self, key: str, bar: Bar, types: tuple[OrderType, ...]) -> Order | None:
        for o in self._open.values():
            if o.type in types and o.instrument_key == key and self._eligible(o, bar):
                return o
        return None

    @staticmethod
    def _trigger(order: Order, bar: Bar) -> tuple[float, datetime] | None:
        assert order.price is not None  # validated on the intent
        p = order.price
        sell = order.side is Side.SELL
        if order.type is OrderType.STOP:
            if (bar.open <= p) if sell else (bar.open >= p):
                return bar.open, bar.open_time
            if (bar.low <= p) if sell else (bar.high >= p):
                return p, bar.close_time
            return None
        if (bar.open >= p) if sell else (bar.open <= p):
            return bar.open, bar.open_time
        if (bar.high >= p) if sell else (bar.low <= p):
            return p, bar.close_time
        return None

    def _fill(self, order: Order, raw_price: float, ts: datetime, liquidity: Liquidity, on_fill: FillHandler) -> None:
        inst = self.instruments[order.instrument_key]
        price = round_price(raw_price, inst.price_decimals)
        bps = self.config.taker_fee_bps if liquidity is Liquidity.TAKER else self.config.maker_fee_bps
        fee = fee_for(price * order.qty, bps)
        order.status, order.filled_qty, order.avg_fill_price, order.updated_at = (
            OrderStatus.FILLED,
            order.qty,
            price,
            ts,
        )
        self._open.pop(order.client_id, None)
        self._fills += 1
        fill = Fill(
            f"{order.id}-1",
            order.id,
            order.client_id,
            order.exchange,
            order.symbol,
            order.side,
            price,
            order.qty,
            fee,
            self.config.fee_currency,
            ts,
            liquidity,
            order.tag,
        )
        signed = fill.signed_qty
        self._positions[order.instrument_key] = round(
            self._positions.get(order.instrument_key, 0.0) + signed, inst.qty_decimals
        )
        if order.oco_group is not None:
            for other in list(self._open.values()):
                if other.oco_group == order.oco_group:
                    del self._open[other.client_id]
                    other.status, other.updated_at, other.reason = (
                        OrderStatus.CANCELED,
                        ts,
                        (f"OCO: {order.client_id} filled"),
                    )
        on_fill(fill)
