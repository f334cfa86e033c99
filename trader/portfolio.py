"""The engine's books: cash, positions, fees, turnover and closed round-trip trades."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from trader.domain import AccountState, Fill, Instrument, Position


@dataclass(frozen=True, slots=True)
class Trade:
    """A closed round trip: from flat to flat in one instrument; ``pnl`` is net of all its fees."""

    trade_no: int
    exchange: str
    symbol: str
    direction: int  # 1 long, -1 short
    entry_time: datetime
    exit_time: datetime
    entry_price: float
    exit_price: float
    qty: float
    pnl: float
    fees: float


@dataclass(slots=True)
class OpenTrade:
    """A round trip still open: its entry and what has been closed of it so far."""

    direction: int
    entry_time: datetime
    entry_price: float
    qty: float
    realized: float = 0.0
    fees: float = 0.0
    exit_notional: float = 0.0
    exit_qty: float = 0.0


class Portfolio:
    """Applies fills to cash and positions; marks positions to the last price."""

    def __init__(self, initial_cash: float, instruments: list[Instrument]) -> None:
        self.initial_cash = initial_cash
        self.cash = initial_cash
        self.instruments = {i.key: i for i in instruments}
        self.positions: dict[str, Position] = {i.key: Position(i.exchange, i.symbol) for i in instruments}
        self.last_prices: dict[str, float] = {}
        self.fees_paid = 0.0
        self.turnover = 0.0  # traded notional, quote currency
        self.trades: list[Trade] = []
        self.trades_closed = 0  # numbering continues across runs of one account (see trader.snapshot)
        self.open_trades: dict[str, OpenTrade] = {}

    def mark(self, instrument_key: str, price: float) -> None:
        """Record the latest price of an instrument."""
        self.last_prices[instrument_key] = price

    def equity(self) -> float:
        """Cash plus positions at their last prices."""
        value = 0.0
        for key, pos in self.positions.items():
            if pos.qty:
                value += pos.qty * self.last_prices.get(key, pos.avg_price)
        return self.cash + value

    def state(self, ts: datetime) -> AccountState:
        """A snapshot of the account."""
        return AccountState(ts, self.cash, self.equity(), self.fees_paid, dict(self.positions))

    def apply(self, fill: Fill) -> Position:
        """Book a fill; returns the new position. Tracks round trips for trade statistics."""
        key = fill.instrument_key
        inst = self.instruments[key]
        pos = self.positions[key]
        signed = fill.signed_qty
        q0 = pos.qty
        raw = q0 + signed
        # to the nearest lot: q0 and the fill are already on the lot grid, so only float noise is removed
        # (flooring lost a whole 1e-8 lot whenever the noise of q0 + fill fell below the grid point)
        q1 = round(raw, inst.qty_decimals) + 0.0
        tr = self.open_trades.get(key)
        if q0 == 0 or (q0 > 0) == (signed > 0):  # opening or adding
            avg = (pos.avg_price * abs(q0) + fill.price * abs(signed)) / abs(q1)
            new = replace(pos, qty=q1, avg_price=avg, opened_at=pos.opened_at if q0 else fill.ts)
            if tr is None:
                tr = self.open_trades[key] = OpenTrade(1 if q1 > 0 else -1, fill.ts, avg, abs(q1))
            else:
                tr.entry_price, tr.qty = avg, abs(q1)
            tr.fees += fill.fee
        else:  # reducing, closing or flipping
            closed = min(abs(signed), abs(q0))
            gain = closed * (fill.price - pos.avg_price) * (1 if q0 > 0 else -1)
            realized = pos.realized_pnl + gain
            if q1 == 0:
                new = replace(pos, qty=0.0, avg_price=0.0, realized_pnl=realized, opened_at=None)
            elif (q1 > 0) != (q0 > 0):
                new = replace(pos, qty=q1, avg_price=fill.price, realized_pnl=realized, opened_at=fill.ts)
            else:
                new = replace(pos, qty=q1, realized_pnl=realized)
            if tr is not None:
                tr.realized += gain
                tr.fees += fill.fee
                tr.exit_notional += closed * fill.price
                tr.exit_qty += closed
                if q1 == 0 or (q1 > 0) != (q0 > 0):
                    self.trades_closed += 1
                    self.trades.append(
                        Trade(
                            self.trades_closed,
                            fill.exchange,
                            fill.symbol,
                            tr.direction,
                            tr.entry_time,
                            fill.ts,
                            tr.entry_price,
                            tr.exit_notional / tr.exit_qty,
                            tr.qty,
                            tr.realized - tr.fees,
                            tr.fees,
                        )
                    )
                    del self.open_trades[key]
                    if q1 != 0:
                        self.open_trades[key] = OpenTrade(1 if q1 > 0 else -1, fill.ts, fill.price, abs(q1))
        self.cash -= signed * fill.price + fill.fee
        self.fees_paid += fill.fee
        self.turnover += fill.notional
        self.positions[key] = new
        return new
