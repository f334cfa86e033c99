"""The trader's domain types: market data in, orders and fills out, positions and account state.

Numbers are ``float``. Every price and quantity that reaches a venue or the books is rounded
to the instrument's precision (:func:`round_price` / :func:`round_qty`), so arithmetic noise
never leaks into orders, and fees are rounded to 8 decimals. Floats keep the engine fast and
NumPy/pandas friendly; the rounding keeps results exactly reproducible between runs.

All times are UTC-aware :class:`datetime` objects; naive times are refused with a
:class:`~cryptolake.errors.DataValidationError` naming the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from cryptolake.bars import check_candle
from cryptolake.errors import DataValidationError
from cryptolake.types import TIMEFRAME_MS, Side

__all__ = [
    "AccountState",
    "Bar",
    "Candle",
    "Fill",
    "HasInstrument",
    "Instrument",
    "IntentAction",
    "Liquidity",
    "Order",
    "OrderIntent",
    "OrderStatus",
    "OrderType",
    "Position",
    "Rejection",
    "Side",
    "Signal",
    "round_price",
    "round_qty",
    "timeframe_delta",
]

FEE_DECIMALS = 8


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"


class OrderStatus(StrEnum):
    """The states of an order's life (:mod:`trader.orders` holds the legal transitions)."""

    INITIALIZED = "initialized"  # approved by risk, not yet at the venue
    SUBMITTED = "submitted"  # written ahead, being sent: the venue may or may not have it yet
    ACCEPTED = "accepted"  # resting / waiting at the venue
    PARTIALLY_FILLED = "partially_filled"
    PENDING_CANCEL = "pending_cancel"  # cancel written ahead, being sent
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    UNKNOWN = "unknown"  # an ambiguous submit (timeout, 5xx): resolved by looking the client id up


#: States in which an order may still trade (an UNKNOWN order may be live at the venue).
OPEN_STATUSES = frozenset({OrderStatus.INITIALIZED, OrderStatus.SUBMITTED, OrderStatus.ACCEPTED,
                           OrderStatus.PARTIALLY_FILLED, OrderStatus.PENDING_CANCEL, OrderStatus.UNKNOWN})


class Liquidity(StrEnum):
    MAKER = "maker"
    TAKER = "taker"


class HasInstrument(Protocol):
    """Anything that names an instrument: an :class:`Instrument`, a :class:`Bar`, a :class:`Position`..."""

    @property
    def exchange(self) -> str: ...

    @property
    def symbol(self) -> str: ...


def _utc(name: str, ts: datetime) -> datetime:
    if type(ts) is datetime and ts.tzinfo is UTC:  # the hot path: every bar of every feed
        return ts
    if not isinstance(ts, datetime) or ts.tzinfo is None or ts.utcoffset() != timedelta(0):
        raise DataValidationError(name, ts, "must be a UTC-aware datetime")
    return ts


def _finite(name: str, v: float, *, positive: bool = False, non_negative: bool = False) -> None:
    if not isinstance(v, int | float) or not math.isfinite(v):
        raise DataValidationError(name, v, "must be a finite number")
    if positive and v <= 0:
        raise DataValidationError(name, v, "must be > 0")
    if non_negative and v < 0:
        raise DataValidationError(name, v, "must be >= 0")


_TIMEFRAME_DELTAS = {tf: timedelta(milliseconds=ms) for tf, ms in TIMEFRAME_MS.items()}


def timeframe_delta(timeframe: str) -> timedelta:
    """The length of one bar of ``timeframe`` (e.g. ``"30m"``)."""
    delta = _TIMEFRAME_DELTAS.get(timeframe)
    if delta is None:
        raise DataValidationError("timeframe", timeframe, f"unknown timeframe, expected one of {sorted(TIMEFRAME_MS)}")
    return delta


def round_price(price: float, decimals: int) -> float:
    """Round a price to the venue's tick (``decimals`` places)."""
    return round(price, decimals)


def round_qty(qty: float, decimals: int) -> float:
    """Round a quantity *down* to the venue's lot size, so sizing never exceeds the budget."""
    scale = 10**decimals
    # the small epsilon keeps 0.3 / 0.1 style float noise from losing a whole lot
    return math.floor(qty * scale + 1e-9) / scale


@dataclass(frozen=True, slots=True)
class Instrument:
    """What is traded and at which precision."""

    exchange: str
    symbol: str
    price_decimals: int = 2
    qty_decimals: int = 6
    lot: float = 0.0  # the venue's smallest tradable amount: a position below it is dust (flat)

    @property
    def key(self) -> str:
        return f"{self.exchange}:{self.symbol}"


@dataclass(frozen=True, slots=True)
class Candle:
    """The fields of one candle as received, before any rule is applied (see :class:`Bar`)."""

    exchange: str
    symbol: str
    timeframe: str
    open_time: datetime
    close_time: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float

    @property
    def instrument_key(self) -> str:
        return f"{self.exchange}:{self.symbol}"

    @property
    def available_time(self) -> datetime:
        return self.close_time


@dataclass(frozen=True, slots=True)
class Bar(Candle):
    """One closed candle that keeps the candle rule. Known (available) at ``close_time``."""

    def __post_init__(self) -> None:
        _utc("open_time", self.open_time)
        _utc("close_time", self.close_time)
        if self.close_time - self.open_time != timeframe_delta(self.timeframe):
            raise DataValidationError("close_time", self.close_time, f"must be open_time + {self.timeframe}")
        o, h, lo, c, v = self.open, self.high, self.low, self.close, self.volume
        # the common case of cryptolake.bars.candle_problems' consistent chain, inlined (floats only: anything
        # else, and any candle failing the chain, goes through the one candle rule)
        if not (type(o) is float and type(h) is float and type(lo) is float and type(c) is float
                and type(v) is float and 0 < lo <= o <= h < math.inf and lo <= c <= h and 0 <= v < math.inf):
            check_candle(o, h, lo, c, v)  # the one candle rule


@dataclass(frozen=True, slots=True)
class Signal:
    """A model's probability that the bar after ``bar_time`` goes up, known at ``available_time``.

    A signal about bar ``t`` cannot be known before that bar closes, so ``available_time``
    must be at or after ``bar_time + timeframe``; anything earlier would be look-ahead.
    """

    exchange: str
    symbol: str
    timeframe: str
    bar_time: datetime
    probability: float
    direction: int
    model_version: str
    available_time: datetime
    signal_id: str = ""  # cryptolake.ids.signal_id: the same signal re-published has the same id

    def __post_init__(self) -> None:
        _utc("bar_time", self.bar_time)
        _utc("available_time", self.available_time)
        _finite("probability", self.probability)
        if not 0.0 <= self.probability <= 1.0:
            raise DataValidationError("probability", self.probability, "must be in [0, 1]")
        if self.direction not in (-1, 0, 1):
            raise DataValidationError("direction", self.direction, "must be -1, 0 or 1")
        close = self.bar_time + timeframe_delta(self.timeframe)
        if self.available_time < close:
            raise DataValidationError(
                "available_time",
                self.available_time,
                f"is before the bar's close {close.isoformat()} (look-ahead)",
            )

    @property
    def instrument_key(self) -> str:
        return f"{self.exchange}:{self.symbol}"


class IntentAction(StrEnum):
    SUBMIT = "submit"
    CANCEL = "cancel"


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """What a strategy wants: a new order or a cancel. Build it with a named constructor:
    :meth:`market`, :meth:`limit`, :meth:`stop` or :meth:`cancel`.

    ``client_id`` is chosen by the strategy (deterministically) and names the order from then on.
    ``price`` is the limit price for LIMIT and the trigger price for STOP orders.
    ``oco_group`` links orders so that when one fills the venue cancels the others.
    """

    action: IntentAction
    client_id: str
    exchange: str
    symbol: str
    side: Side = Side.BUY
    type: OrderType = OrderType.MARKET
    qty: float = 0.0
    price: float | None = None
    reduce_only: bool = False
    oco_group: str | None = None
    tag: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.action, IntentAction):
            raise DataValidationError("action", self.action, "must be an IntentAction (use the named constructors)")
        if not self.client_id:
            raise DataValidationError("client_id", self.client_id, "must not be empty")
        if self.action is IntentAction.SUBMIT:
            _finite("qty", self.qty, positive=True)
            if self.type is OrderType.MARKET and self.price is not None:
                raise DataValidationError("price", self.price, "market orders take no price")
            if self.type is not OrderType.MARKET:
                if self.price is None:
                    raise DataValidationError("price", self.price, f"{self.type} orders need a price")
                _finite("price", self.price, positive=True)

    @classmethod
    def market(
        cls, client_id: str, instrument: HasInstrument, side: Side, qty: float, *,
        reduce_only: bool = False, tag: str = "",
    ) -> OrderIntent:
        """A market order: fills at the next price the venue offers."""
        return cls(IntentAction.SUBMIT, client_id, instrument.exchange, instrument.symbol, side, OrderType.MARKET,
                   qty, None, reduce_only, None, tag)

    @classmethod
    def limit(cls, client_id: str, instrument: HasInstrument, side: Side, qty: float, price: float,
              **resting: Any) -> OrderIntent:
        """A limit order at ``price`` (a take-profit when it sells above the market); ``resting``:
        ``reduce_only``, ``oco_group``, ``tag``."""
        return cls._resting(OrderType.LIMIT, client_id, instrument, side, qty, price, **resting)

    @classmethod
    def stop(cls, client_id: str, instrument: HasInstrument, side: Side, qty: float, trigger: float,
             **resting: Any) -> OrderIntent:
        """A stop (market once ``trigger`` trades): a stop-loss when it sells below the market."""
        return cls._resting(OrderType.STOP, client_id, instrument, side, qty, trigger, **resting)

    @classmethod
    def _resting(
        cls, kind: OrderType, client_id: str, instrument: HasInstrument, side: Side, qty: float, price: float, *,
        reduce_only: bool = False, oco_group: str | None = None, tag: str = "",
    ) -> OrderIntent:
        return cls(IntentAction.SUBMIT, client_id, instrument.exchange, instrument.symbol, side, kind, qty, price,
                   reduce_only, oco_group, tag)

    @classmethod
    def cancel(cls, order: Order) -> OrderIntent:
        """Cancel an open order (cancels always pass the risk engine)."""
        return cls(IntentAction.CANCEL, order.client_id, order.exchange, order.symbol)

    @property
    def instrument_key(self) -> str:
        return f"{self.exchange}:{self.symbol}"

    @property
    def is_cancel(self) -> bool:
        return self.action is IntentAction.CANCEL


@dataclass(slots=True)
class Order:
    """An order approved by the risk engine; ``id`` is the venue's id once submitted."""

    client_id: str
    exchange: str
    symbol: str
    side: Side
    type: OrderType
    qty: float
    price: float | None
    created_at: datetime
    status: OrderStatus = OrderStatus.INITIALIZED
    id: str = ""
    reduce_only: bool = False
    oco_group: str | None = None
    tag: str = ""
    filled_qty: float = 0.0
    avg_fill_price: float | None = None
    updated_at: datetime | None = None
    reason: str = ""

    @property
    def instrument_key(self) -> str:
        return f"{self.exchange}:{self.symbol}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @classmethod
    def from_intent(cls, intent: OrderIntent, created_at: datetime, **overrides: Any) -> Order:
        """The order ``intent`` becomes: its fields copied, then ``overrides`` (status, tag, reason...)."""
        fields: dict[str, Any] = {
            "client_id": intent.client_id, "exchange": intent.exchange, "symbol": intent.symbol,
            "side": intent.side, "type": intent.type, "qty": intent.qty, "price": intent.price,
            "created_at": created_at, "reduce_only": intent.reduce_only, "oco_group": intent.oco_group,
            "tag": intent.tag,
        }
        return cls(**(fields | overrides))


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution of an order."""

    id: str
    order_id: str
    client_id: str
    exchange: str
    symbol: str
    side: Side
    price: float
    qty: float
    fee: float
    fee_currency: str
    ts: datetime
    liquidity: Liquidity
    tag: str = ""

    @property
    def instrument_key(self) -> str:
        return f"{self.exchange}:{self.symbol}"

    @property
    def notional(self) -> float:
        return self.price * self.qty

    @property
    def signed_qty(self) -> float:
        return self.qty if self.side is Side.BUY else -self.qty


@dataclass(frozen=True, slots=True)
class Rejection:
    """An intent the risk engine refused, with the reason."""

    intent: OrderIntent
    reason: str
    ts: datetime


@dataclass(frozen=True, slots=True)
class Position:
    """A signed position (``qty`` > 0 long) with its average entry price and realised PnL."""

    exchange: str
    symbol: str
    qty: float = 0.0
    avg_price: float = 0.0
    realized_pnl: float = 0.0
    opened_at: datetime | None = None

    @property
    def is_flat(self) -> bool:
        return self.qty == 0.0

    @property
    def instrument_key(self) -> str:
        return f"{self.exchange}:{self.symbol}"


@dataclass(frozen=True, slots=True)
class AccountState:
    """Cash, equity and positions at one instant."""

    ts: datetime
    cash: float
    equity: float
    fees_paid: float
    positions: dict[str, Position] = field(default_factory=dict)
