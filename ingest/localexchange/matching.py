"""The local exchange's matching engine.

Users' orders meet two kinds of liquidity:

* the **replayed book** (the recorded Binance depth, kept current by the replay), and
* the **own book**: resting limit orders of the exchange's accounts.

Price-time priority across both: an incoming order walks the best price first; at one
price the replayed quantity (it was there first) fills before resting own orders, and own
orders fill in arrival order. Quantity taken from a replayed level is remembered until the
replay re-quotes that level, so the same displayed size is never sold twice. Resting own
orders also fill, as makers, when a replayed trade prints at or through their price.
Fees: maker/taker rates charged in the asset received (as Binance does). Balances are
locked when a limit order rests and released on cancel. Arithmetic is Decimal.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Literal

from cryptolake.errors import DataValidationError, InsufficientFundsError, OrderNotFoundError, OrderRejectedError

ZERO = Decimal(0)
ASSET_STEP = Decimal("0.00000001")  # balances and commissions are kept at 8 decimals, as Binance does
Side = Literal["BUY", "SELL"]


@dataclass(frozen=True)
class MarketSpec:
    """One tradable market: ids and increments."""

    symbol: str  # exchange id, e.g. BTCUSDT
    base: str
    quote: str
    tick_size: Decimal = Decimal("0.01")
    step_size: Decimal = Decimal("0.00001")
    min_notional: Decimal = Decimal("5")


@dataclass
class Fill:
    """One execution of an own order."""

    trade_id: int
    order_id: int
    account: str
    symbol: str
    side: Side
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    is_maker: bool
    time: int


@dataclass
class Order:
    """An own order and its execution state (Binance field semantics)."""

    order_id: int
    client_order_id: str
    account: str
    symbol: str
    side: Side
    type: str  # LIMIT | MARKET
    time_in_force: str
    price: Decimal
    orig_qty: Decimal
    time: int
    seq: int
    executed_qty: Decimal = ZERO
    cumm_quote: Decimal = ZERO
    status: str = "NEW"
    update_time: int = 0
    fills: list[Fill] = field(default_factory=list)
    quote_order_qty: Decimal = ZERO
    locked: Decimal = ZERO  # funds still reserved for the open remainder
    lock_asset: str = ""

    @property
    def remaining(self) -> Decimal:
        return self.orig_qty - self.executed_qty

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")


@dataclass
class Balance:
    free: Decimal = ZERO
    locked: Decimal = ZERO


class MatchingEngine:
    """Own order books, balances and fills for every market of the local exchange."""

    def __init__(self, markets: dict[str, MarketSpec], maker_fee: Decimal = Decimal("0.001"),
                 taker_fee: Decimal = Decimal("0.001")) -> None:
        self.markets = markets
        self.maker_fee = maker_fee
        self.taker_fee = taker_fee
        self.replay_bids: dict[str, dict[Decimal, Decimal]] = {s: {} for s in markets}
        self.replay_asks: dict[str, dict[Decimal, Decimal]] = {s: {} for s in markets}
        self._taken: dict[tuple[str, str, Decimal], Decimal] = {}
        self.orders: dict[int, Order] = {}
        self.balances: dict[str, dict[str, Balance]] = {}
        self.fills: list[Fill] = []
        self._order_ids = itertools.count(1)
        self._trade_ids = itertools.count(1)
        self._seq = itertools.count(1)
        self.last_price: dict[str, Decimal] = {}
        # Called on every own-order update as Binance reports it (execution type NEW, TRADE, CANCELED,
        # EXPIRED), with the fill of a TRADE: the local exchange's user-data stream.
        self.listener: Callable[[Order, str, Fill | None], None] | None = None

    def _report(self, order: Order, execution: str, fill: Fill | None = None) -> None:
        if self.listener is not None:
            self.listener(order, execution, fill)

    # --- accounts ------------------------------------------------------------------
    def fund(self, account: str, asset: str, amount: Decimal) -> None:
        """Credit ``amount`` of ``asset`` (paper money for a local account)."""
        bal = self.balances.setdefault(account, {}).setdefault(asset, Balance())
        bal.free += amount

    def balance(self, account: str, asset: str) -> Balance:
        return self.balances.setdefault(account, {}).setdefault(asset, Balance())

    # --- replayed liquidity -----------------------------------------------------------
    def set_replay_level(self, symbol: str, side: Literal["bid", "ask"], price: Decimal, qty: Decimal) -> None:
        """The replay changed a level: store it and forget what we took from the old quote."""
        book = self.replay_bids[symbol] if side == "bid" else self.replay_asks[symbol]
        if qty == 0:
            book.pop(price, None)
        else:
            book[price] = qty
        self._taken.pop((symbol, side, price), None)

    def reset_replay_book(self, symbol: str, bids: dict[Decimal, Decimal], asks: dict[Decimal, Decimal]) -> None:
        self.replay_bids[symbol] = dict(bids)
        self.replay_asks[symbol] = dict(asks)
        self._taken = {k: v for k, v in self._taken.items() if k[0] != symbol}

    def on_replay_trade(self, symbol: str, price: Decimal, qty: Decimal, buyer_is_maker: bool,
                        time_ms: int) -> list[Fill]:
        """A recorded trade printed: resting own orders at or through its price fill as makers."""
        self.last_price[symbol] = price
        fills: list[Fill] = []
        left = qty
        # buyer is maker -> an aggressive seller hit bids: our resting buys at >= price fill.
        side: Side = "BUY" if buyer_is_maker else "SELL"
        for order in self._resting(symbol, side):
            if left <= 0:
                break
            if (side == "BUY" and order.price < price) or (side == "SELL" and order.price > price):
                break
            take = min(left, order.remaining)
            fills.append(self._execute(order, order.price, take, is_maker=True, time_ms=time_ms))
            left -= take
        return fills

    # --- orders ---------------------------------------------------------------------
    def _resting(self, symbol: str, side: Side) -> list[Order]:
        rest = [o for o in self.orders.values() if o.symbol == symbol and o.side == side and o.is_open
                and o.type == "LIMIT"]
        rest.sort(key=lambda o: ((-o.price if side == "BUY" else o.price), o.seq))
        return rest

    def _check_qty(self, spec: MarketSpec, qty: Decimal, field_name: str) -> Decimal:
        if qty <= 0:
            raise DataValidationError(field_name, str(qty), "must be positive")
        if qty % spec.step_size != 0:
            raise DataValidationError(field_name, str(qty), f"not a multiple of the step size {spec.step_size}")
        return qty

    def place(self, account: str, symbol: str, side: Side, order_type: str, *, qty: Decimal | None,
              price: Decimal | None = None, time_in_force: str = "GTC", client_order_id: str = "",
              quote_order_qty: Decimal | None = None, time_ms: int) -> Order:
        """Validate, lock funds, match, rest the remainder (LIMIT GTC) and return the order."""
        spec = self.markets.get(symbol)
        if spec is None:
            raise DataValidationError("symbol", symbol, "unknown market")
        if side not in ("BUY", "SELL"):
            raise DataValidationError("side", side, "must be BUY or SELL")
        if order_type not in ("LIMIT", "MARKET"):
            raise DataValidationError("type", order_type, "only LIMIT and MARKET are supported")
        if client_order_id and any(o.client_order_id == client_order_id and o.account == account and o.is_open
                                   for o in self.orders.values()):
            raise OrderRejectedError(f"duplicate clientOrderId {client_order_id!r}")
        if order_type == "LIMIT":
            if price is None or price <= 0:
                raise DataValidationError("price", price, "a LIMIT order needs a positive price")
            if price % spec.tick_size != 0:
                raise DataValidationError("price", str(price), f"not a multiple of the tick size {spec.tick_size}")
            if qty is None:
                raise DataValidationError("quantity", None, "a LIMIT order needs a quantity")
            qty = self._check_qty(spec, qty, "quantity")
            if qty * price < spec.min_notional:
                raise DataValidationError("notional", str(qty * price), f"below the minimum {spec.min_notional}")
        elif qty is None and quote_order_qty is None:
            raise DataValidationError("quantity", None, "a MARKET order needs quantity or quoteOrderQty")
        elif qty is not None:
            qty = self._check_qty(spec, qty, "quantity")
        order = Order(
            order_id=next(self._order_ids), client_order_id=client_order_id or f"local-{next(self._seq)}",
            account=account, symbol=symbol, side=side, type=order_type,
            time_in_force=time_in_force if order_type == "LIMIT" else "GTC",
            price=price if order_type == "LIMIT" and price is not None else ZERO,
            orig_qty=qty if qty is not None else ZERO, time=time_ms, seq=next(self._seq), update_time=time_ms,
            quote_order_qty=quote_order_qty or ZERO,
        )
        self._lock_for(order, spec)
        self.orders[order.order_id] = order
        self._report(order, "NEW")
        self._match(order, spec, time_ms)
        if order.quote_order_qty > 0:
            self.finish_quote_order(order)
        if order.is_open and (order.type == "MARKET" or order.time_in_force in ("IOC", "FOK")):
            order.status = "EXPIRED"
        if order.status == "EXPIRED":
            self._report(order, "EXPIRED")
        if not order.is_open:
            self._release(order, spec)
        return order

    def _lock_for(self, order: Order, spec: MarketSpec) -> None:
        if order.side == "SELL":
            need, asset = order.orig_qty, spec.base
        elif order.type == "LIMIT":
            need, asset = order.orig_qty * order.price, spec.quote
        elif order.quote_order_qty > 0:
            need, asset = order.quote_order_qty, spec.quote
        else:
            need, asset = self._market_buy_cost(order.symbol, order.orig_qty), spec.quote
        bal = self.balance(order.account, asset)
        if bal.free < need:
            raise InsufficientFundsError(
                f"Account has insufficient balance for requested action: needs {need} {asset}, free {bal.free}"
            )
        bal.free -= need
        bal.locked += need
        order.locked = need
        order.lock_asset = asset

    def _market_buy_cost(self, symbol: str, qty: Decimal) -> Decimal:
        cost, left = ZERO, qty
        for price, avail in self._liquidity(symbol, "BUY"):
            take = min(left, avail)
            cost += take * price
            left -= take
            if left <= 0:
                return cost
        raise OrderRejectedError(f"not enough replayed liquidity to buy {qty} {symbol} at market")

    def _release(self, order: Order, spec: MarketSpec) -> None:
        if order.locked > 0:
            bal = self.balance(order.account, order.lock_asset)
            bal.locked -= order.locked
            bal.free += order.locked
            order.locked = ZERO

    def _liquidity(self, symbol: str, side: Side, account: str | None = None) -> list[tuple[Decimal, Decimal]]:
        """Replayed (price, available qty) on the side a ``side`` order takes from, best first."""
        book_side = "ask" if side == "BUY" else "bid"
        book = self.replay_asks[symbol] if side == "BUY" else self.replay_bids[symbol]
        out = []
        for price in sorted(book, reverse=(side == "SELL")):
            avail = book[price] - self._taken.get((symbol, book_side, price), ZERO)
            if avail > 0:
                out.append((price, avail))
        return out

    def _match(self, order: Order, spec: MarketSpec, time_ms: int) -> None:
        opposite: Side = "SELL" if order.side == "BUY" else "BUY"
        replay = self._liquidity(order.symbol, order.side)
        own = [o for o in self._resting(order.symbol, opposite) if o.account != order.account]
        book_side = "ask" if order.side == "BUY" else "bid"
        better = (lambda a, b: a < b) if order.side == "BUY" else (lambda a, b: a > b)
        ri = oi = 0
        quote_left = order.quote_order_qty if order.type == "MARKET" and order.orig_qty == 0 else None
        while True:
            if quote_left is None and order.remaining <= 0:
                break
            if quote_left is not None and quote_left <= 0:
                break
            rp = replay[ri][0] if ri < len(replay) else None
            op = own[oi].price if oi < len(own) else None
            if rp is None and op is None:
                break
            use_replay = op is None or (rp is not None and not better(op, rp))
            price = rp if use_replay else op
            assert price is not None
            if order.type == "LIMIT" and better(order.price, price) and order.price != price:
                break
            avail = replay[ri][1] if use_replay else own[oi].remaining
            if quote_left is not None:
                want = (quote_left / price).quantize(spec.step_size, rounding=ROUND_DOWN)
                if want <= 0:
                    break
            else:
                want = order.remaining
            take = min(want, avail)
            if quote_left is not None:
                order.orig_qty += take
                quote_left -= take * price
            self._execute(order, price, take, is_maker=False, time_ms=time_ms)
            if use_replay:
                key = (order.symbol, book_side, price)
                self._taken[key] = self._taken.get(key, ZERO) + take
                replay[ri] = (price, avail - take)
                if replay[ri][1] <= 0:
                    ri += 1
            else:
                self._execute(own[oi], price, take, is_maker=True, time_ms=time_ms)
                if not own[oi].is_open:
                    oi += 1

    def _execute(self, order: Order, price: Decimal, qty: Decimal, *, is_maker: bool, time_ms: int) -> Fill:
        spec = self.markets[order.symbol]
        rate = self.maker_fee if is_maker else self.taker_fee
        quote = price * qty
        base_bal = self.balance(order.account, spec.base)
        quote_bal = self.balance(order.account, spec.quote)
        locked = order.locked
        if order.side == "BUY":
            commission, asset = (qty * rate).quantize(ASSET_STEP), spec.base
            use_locked = min(locked, quote)
            quote_bal.locked -= use_locked
            quote_bal.free -= quote - use_locked
            base_bal.free += qty - commission
        else:
            commission, asset = (quote * rate).quantize(ASSET_STEP), spec.quote
            use_locked = min(locked, qty)
            base_bal.locked -= use_locked
            base_bal.free -= qty - use_locked
            quote_bal.free += quote - commission
        order.locked = locked - use_locked
        order.executed_qty += qty
        order.cumm_quote += quote
        order.update_time = time_ms
        order.status = "FILLED" if order.executed_qty >= order.orig_qty and order.quote_order_qty == 0 else (
            "PARTIALLY_FILLED")
        if order.type == "MARKET" and order.quote_order_qty > 0:
            order.status = "PARTIALLY_FILLED"
        fill = Fill(next(self._trade_ids), order.order_id, order.account, order.symbol, order.side, price, qty,
                    commission, asset, is_maker, time_ms)
        order.fills.append(fill)
        self.fills.append(fill)
        self.last_price[order.symbol] = price
        if order.status == "FILLED":
            self._release(order, spec)
        self._report(order, "TRADE", fill)
        return fill

    def finish_quote_order(self, order: Order) -> None:
        """A quoteOrderQty market order is done once matching stops: FILLED if anything executed."""
        if order.quote_order_qty > 0:
            order.status = "FILLED" if order.executed_qty > 0 else "EXPIRED"
            self._release(order, self.markets[order.symbol])

    def cancel(self, account: str, symbol: str, order_id: int | None = None,
               client_order_id: str | None = None, time_ms: int = 0) -> Order:
        order = self.find(account, symbol, order_id, client_order_id)
        if not order.is_open:
            raise OrderNotFoundError(f"Unknown order sent: order {order.order_id} is {order.status}")
        order.status = "CANCELED"
        order.update_time = time_ms
        self._release(order, self.markets[symbol])
        self._report(order, "CANCELED")
        return order

    def find(self, account: str, symbol: str, order_id: int | None = None,
             client_order_id: str | None = None) -> Order:
        for order in self.orders.values():
            if order.account != account or order.symbol != symbol:
                continue
            if (order_id is not None and order.order_id == order_id) or (
                    client_order_id and order.client_order_id == client_order_id):
                return order
        raise OrderNotFoundError(f"Order does not exist: id={order_id} clientOrderId={client_order_id}")
