"""Signal strategies: long/flat from a point-in-time signal function, with stops the venue fills.

A signal strategy is written as one compiled function (numba) of the bars up to ``t``::

    signal(open, high, low, close, volume, minute_of_day, t, params) -> (entry, exit, trail_distance)

``minute_of_day`` is the bar's *close* time in UTC minutes (0-1439); ``params`` is a tuple of floats
from the strategy's frozen config; ``trail_distance`` is NaN for no trailing stop. The function only
reads bars ``t - lookback + 1 .. t``. The trading node calls it in :meth:`SignalStrategy.on_bar` on the
bars of :meth:`StrategyContext.history`; the vectorised engine (:mod:`research.vector`) calls the same
function for every bar, so both take the same decisions (a test proves it on real data).

Rules of the state machine (the engine reproduces them exactly):

* Flat, no open order, ``entry`` at the close of bar ``t``: market buy of ``fraction`` of equity
  (default 1/N symbols), capped by free cash less ``cash_reserve``, sized at ``t``'s close; it fills
  at the open of ``t + 1`` (paper venue: slippage, taker fee).
* On the entry fill, a stop-loss (``stop_loss_pct`` below the fill) and a take-profit
  (``take_profit_pct`` above) rest at the venue in one OCO group, checked from the entry bar on
  (stop first when both could have filled).
* Long: the trailing level is ``max(close - trail_distance)`` over the bars since entry; ``exit`` or a
  close below the trailing level cancels the resting orders and sends a market sell (next open).
* After any exit the strategy may enter again on the next bar whose ``entry`` is true.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import islice
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from trader.domain import Bar, Fill, Instrument, OrderIntent, OrderType, Side, round_price
from trader.strategy import Strategy, StrategyConfig, StrategyContext

ENTRY, EXIT, STOP, TAKE_PROFIT = "entry", "exit", "stop", "take_profit"
SignalFn = Callable[..., tuple[bool, bool, float]]


class SignalConfig(StrategyConfig):
    """Sizing and protective orders shared by every signal strategy (fractions: 0.02 = 2 %)."""

    fraction: float | None = Field(default=None, gt=0.0, le=1.0, description="Equity per position; None = 1/N")
    cash_reserve: float = Field(default=0.01, ge=0.0, lt=1.0, description="Free cash an entry leaves unspent")
    stop_loss_pct: float | None = Field(default=None, gt=0.0, lt=1.0, description="Stop below entry; None = none")
    take_profit_pct: float | None = Field(default=None, gt=0.0, description="Take profit above entry; None = none")


def bar_arrays(bars: Sequence[Bar]) -> tuple[np.ndarray, ...]:
    """open, high, low, close, volume and close minute-of-day (UTC) of ``bars`` as float arrays."""
    rows = [(b.open, b.high, b.low, b.close, b.volume, b.close_time.hour * 60 + b.close_time.minute) for b in bars]
    return tuple(np.array(rows, dtype=float).reshape(len(rows), 6).T.copy())


class BarWindow:
    """The last ``n`` bars of one instrument as arrays, updated by one row per bar.

    A cache of :meth:`StrategyContext.history` (not a second source of truth): :meth:`update` appends the
    new bar when it follows the last one it saw and rebuilds from the history otherwise.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.buf = np.empty((6, 2 * n))
        self.size = 0
        self.last: Bar | None = None

    def update(self, hist: Sequence[Bar]) -> tuple[np.ndarray, ...]:
        """The arrays of ``hist``'s last ``n`` bars (the current bar last); ``hist`` may be longer (a deque)."""
        n = self.n
        if len(hist) >= 2 and self.last is hist[-2] and self.size >= n:
            if self.size == 2 * n:
                self.buf[:, : n - 1] = self.buf[:, n + 1 :]
                self.size = n - 1
            b = hist[-1]
            ct = b.close_time
            self.buf[:, self.size] = (b.open, b.high, b.low, b.close, b.volume, ct.hour * 60 + ct.minute)
            self.size += 1
        else:
            arrays = np.array(bar_arrays(list(islice(hist, max(0, len(hist) - n), None))))
            self.buf[:, : arrays.shape[1]] = arrays
            self.size = arrays.shape[1]
        self.last = hist[-1]
        lo = self.size - min(n, len(hist))
        return tuple(self.buf[:, lo : self.size])  # the six rows as views, one slice


class SignalStrategy(Strategy):
    """Base of the library's bar strategies; subclasses set ``signal`` and implement :meth:`params`."""

    Config: ClassVar[type[StrategyConfig]] = SignalConfig
    signal: ClassVar[SignalFn]

    def __init__(self, config: SignalConfig, instruments: Sequence[Instrument]) -> None:
        super().__init__(config, instruments)
        self.cfg = config
        self.fraction = config.fraction if config.fraction is not None else 1.0 / len(self.instruments)
        self.history_bars = self.lookback()
        self._params = self.params()
        self._trail: dict[str, float] = {}
        self._windows: dict[str, BarWindow] = {}
        self.decisions = 0

    def lookback(self) -> int:
        """Bars the signal function reads (the current bar included)."""
        raise NotImplementedError

    def params(self) -> tuple[float, ...]:
        """The config's parameters in the order the signal function takes them."""
        raise NotImplementedError

    def evaluate(self, arrays: tuple[np.ndarray, ...]) -> tuple[bool, bool, float]:
        """The signal at the last bar of ``arrays`` (see :func:`bar_arrays`; at least :meth:`lookback` bars)."""
        e, x, d = type(self).signal(*arrays, len(arrays[0]) - 1, self._params)
        return bool(e), bool(x), float(d)

    def on_bar(self, bar: Bar, ctx: StrategyContext) -> list[OrderIntent]:
        key = bar.instrument_key
        lookback = self.history_bars
        hist = ctx.bars.get(key, ())  # the node's read-only history (read, never copied: only its tail is used)
        if len(hist) < lookback:
            return []
        orders = ctx.orders_for(key) if ctx.open_orders else ()
        if orders and any(o.type is OrderType.MARKET for o in orders):
            return []  # an entry or exit is on its way (only with venue latency)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = BarWindow(lookback)
        entry, exit_, dist = self.evaluate(window.update(hist))
        self.decisions += 1
        pos = ctx.position(key)
        inst = self.instruments[key]
        if pos.is_flat:
            self._trail.pop(key, None)
            if not entry or orders:
                return []
            qty = ctx.entry_qty(key, self.fraction, self.cfg.cash_reserve)
            return [OrderIntent.market(self.next_id(ENTRY), inst, Side.BUY, qty, tag=ENTRY)] if qty > 0 else []
        if pos.qty < 0:
            return []  # long/flat strategies never open shorts; a short is someone else's
        level = self._trail.get(key, -math.inf)
        if not math.isnan(dist):
            level = max(level, bar.close - dist)
            self._trail[key] = level
        if not (exit_ or bar.close < level):
            return []
        intents = [OrderIntent.cancel(o) for o in orders]
        intents.append(OrderIntent.market(self.next_id(EXIT), inst, Side.SELL, pos.qty, reduce_only=True, tag=EXIT))
        return intents

    def on_fill(self, fill: Fill, ctx: StrategyContext) -> list[OrderIntent]:
        key = fill.instrument_key
        inst = self.instruments.get(key)
        pos = ctx.position(key)
        if inst is None:
            return []
        if fill.tag == ENTRY and pos.qty > 0:
            return protective_orders(self, inst, fill.price, pos.qty, self.cfg.stop_loss_pct,
                                     self.cfg.take_profit_pct)
        if fill.tag in (EXIT, STOP, TAKE_PROFIT) and pos.is_flat:
            self._trail.pop(key, None)
            return [OrderIntent.cancel(o) for o in ctx.orders_for(key)]
        return []


def protective_orders(strategy: Strategy, inst: Instrument, entry_price: float, qty: float,
                      stop_loss_pct: float | None, take_profit_pct: float | None) -> list[OrderIntent]:
    """A stop-loss and a take-profit below/above ``entry_price`` in one OCO group (either may be None)."""
    group = f"{strategy.name}-oco-{strategy.seq + 1:06d}"
    out: list[OrderIntent] = []
    if stop_loss_pct is not None:
        trigger = round_price(entry_price * (1 - stop_loss_pct), inst.price_decimals)
        out.append(OrderIntent.stop(strategy.next_id(STOP), inst, Side.SELL, qty, trigger, reduce_only=True,
                                    oco_group=group, tag=STOP))
    if take_profit_pct is not None:
        limit = round_price(entry_price * (1 + take_profit_pct), inst.price_decimals)
        out.append(OrderIntent.limit(strategy.next_id(TAKE_PROFIT), inst, Side.SELL, qty, limit, reduce_only=True,
                                     oco_group=group, tag=TAKE_PROFIT))
    return out


def signal_arrays(fn: Any, bars: tuple[np.ndarray, ...], params: tuple[float, ...], lookback: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Entry, exit and trail-distance arrays of ``fn`` over whole bar arrays (tests, small data).

    The research engine's compiled loop (:func:`research.vector.signals`) is the fast path."""
    o, h, lo, c, v, mod = bars
    n = len(c)
    ent, ext, dist = np.zeros(n, bool), np.zeros(n, bool), np.full(n, np.nan)
    for t in range(lookback - 1, n):
        ent[t], ext[t], dist[t] = fn(o, h, lo, c, v, mod, t, params)
    return ent, ext, dist
