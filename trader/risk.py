"""The risk engine: order intents in, approved orders (or rejections with a reason) out.

States (as in nautilus_trader):

* ``ACTIVE``: every intent that passes the limits becomes an order.
* ``REDUCING``: only orders that reduce the current position pass (entered for the rest of
  the UTC day when the day's loss exceeds ``max_daily_loss_pct``; back to ACTIVE next day).
* ``HALTED``: nothing but cancels and exits (orders that reduce a position) passes (entered when
  drawdown from the equity peak exceeds ``max_drawdown_pct``, or by a kill switch
  (:mod:`trader.killswitch`); sticky until a person calls :meth:`RiskEngine.set_state`).

Cancels always pass, in every state, and so do exits: a halt must never trap a position.
Limits are checked against the last known price for market orders and the order's own price otherwise.

Limits are per instrument (``max_order_notional``, ``max_position_notional``, overridable per
symbol in ``per_symbol``), per venue (``max_venue_notional``, overridable in ``per_venue``: gross
notional of the positions held on one exchange after the order) and account-wide
(``max_gross_exposure``: gross notional of all positions after the order over equity;
``max_open_positions``; drawdown and daily loss of the account's equity). Account-wide and venue
checks need the :class:`AccountExposure` the node passes. Orders that reduce a position are never
blocked by size or exposure limits.

Sizing and exits, fed one bar at a time by :meth:`RiskEngine.on_bar` (so backtest, paper and live
take the same decisions from the same bars):

* **volatility target** (``vol_target``): an entry is sized *down* so that the position's notional
  times the instrument's annualised volatility (population standard deviation of the last
  ``vol_lookback`` close-to-close returns, times the square root of bars per year) stays within
  ``vol_target`` x equity; an entry that cannot be sized to at least one lot is rejected.
* **cooldown after a loss** (``loss_cooldown_bars``): when a round trip in an instrument closes at
  a loss, new entries in it are refused for that many of its bars (the bar whose fills closed it is
  the first).
* **protective stops**: a *trailing stop* ``trailing_stop_pct`` below the highest high since the
  position was opened (above the lowest low for a short) and an *ATR stop* ``atr_stop_mult`` x
  ATR(``atr_period``) from the entry price (ATR fixed at the first bar the position is held; with
  ``atr_trailing`` measured from the high-water mark with the current ATR instead, a chandelier
  stop). The tighter level wins. A bar whose low (high, for a short) trades through the level
  taken *before* that bar triggers the stop: the node cancels the instrument's open orders and
  closes the position at market (:meth:`trader.node.TradingNode._protect`), like an emulated stop
  order, so the exit fills at the venue's next price (the next bar's open on paper).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import cast

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from cryptolake.logs import get_logger
from trader.domain import Bar, Instrument, Order, OrderIntent, Position, Rejection, Side, round_qty

YEAR_MS = 365 * 24 * 3600 * 1000

log = get_logger(__name__)


class TradingState(StrEnum):
    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"


class SymbolLimits(BaseModel):
    """Per-symbol overrides of the per-instrument limits (``None`` keeps the account default)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_order_notional: float | None = Field(default=None, gt=0)
    max_position_notional: float | None = Field(default=None, gt=0)


@dataclass(frozen=True, slots=True)
class AccountExposure:
    """The account around one order: equity and what the *other* instruments hold."""

    equity: float
    other_gross_notional: float = 0.0
    other_open_positions: int = 0
    other_venue_notional: float = 0.0  # the part of other_gross_notional held on the order's venue


@dataclass(slots=True)
class StopState:
    """A held position's protective stop: the extremes since it opened and the ATR taken at entry."""

    direction: int  # 1 long, -1 short
    entry_price: float
    peak: float  # highest high (long) / lowest low (short) since the position was first held at a bar
    entry_atr: float | None


class RiskConfig(BaseModel):
    """Pre-trade limits. ``None`` disables a limit. Percentages are fractions (0.2 = 20 %)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_order_notional: float | None = Field(default=None, gt=0, description="Largest single order, quote currency")
    max_position_notional: float | None = Field(default=None, gt=0, description="Largest position, quote currency")
    max_drawdown_pct: float | None = Field(default=0.5, gt=0, lt=1, description="Drawdown from peak that halts trading")
    max_daily_loss_pct: float | None = Field(default=None, gt=0, lt=1, description="Day loss that switches to REDUCING")
    max_gross_exposure: float | None = Field(
        default=None, gt=0, description="Account: gross position notional / equity after the order (1.0 = no leverage)"
    )
    max_open_positions: int | None = Field(default=None, ge=1, description="Account: instruments held at once")
    per_symbol: dict[str, SymbolLimits] = Field(default_factory=dict, description="Per-symbol limit overrides")
    max_venue_notional: float | None = Field(
        default=None, gt=0, description="Gross position notional held on one venue after the order, quote currency")
    per_venue: dict[str, float] = Field(default_factory=dict, description="Per-venue max_venue_notional overrides")
    vol_target: float | None = Field(
        default=None, gt=0, description="Entries sized down so position notional x annualised vol <= this x equity")
    vol_lookback: int = Field(default=20, ge=2, description="Close-to-close returns in the volatility estimate")
    loss_cooldown_bars: int | None = Field(
        default=None, ge=1, description="Refuse entries in an instrument for this many bars after a losing trade")
    trailing_stop_pct: float | None = Field(
        default=None, gt=0, lt=1, description="Close a position this far below its high-water mark (above for short)")
    atr_stop_mult: float | None = Field(default=None, gt=0, description="Close a position this many ATRs from entry")
    atr_period: int = Field(default=14, ge=1, description="Bars in the ATR of the ATR stop")
    atr_trailing: bool = Field(default=False, description="ATR stop from the high-water mark with the current ATR")

    def order_limit(self, symbol: str) -> float | None:
        """The max order notional for ``symbol``."""
        o = self.per_symbol.get(symbol)
        return o.max_order_notional if o and o.max_order_notional is not None else self.max_order_notional

    def position_limit(self, symbol: str) -> float | None:
        """The max position notional for ``symbol``."""
        o = self.per_symbol.get(symbol)
        return o.max_position_notional if o and o.max_position_notional is not None else self.max_position_notional

    def venue_limit(self, venue: str) -> float | None:
        """The max gross position notional on ``venue``."""
        return self.per_venue.get(venue, self.max_venue_notional)

    @property
    def has_stops(self) -> bool:
        return self.trailing_stop_pct is not None or self.atr_stop_mult is not None

    @property
    def history_bars(self) -> int:
        """Bars of history per instrument the engine's stops and sizing need."""
        return max(self.atr_period + 1 if self.atr_stop_mult is not None else 0,
                   self.vol_lookback + 1 if self.vol_target is not None else 0)


class RiskEngine:
    """Checks each intent against the state and limits; tracks equity for drawdown and daily loss."""

    def __init__(self, config: RiskConfig) -> None:
        self.config = config
        self.state = TradingState.ACTIVE
        self.peak_equity: float | None = None
        self._day: date | None = None
        self._day_start_equity: float | None = None
        self._reducing_day: date | None = None
        self.transitions: list[tuple[datetime, TradingState, str]] = []
        self.instruments: dict[str, Instrument] = {}  # set by the node: lot sizes for sizing
        self.bars_seen: dict[str, int] = {}
        self.loss_at: dict[str, int] = {}  # bars_seen of the instrument when its last losing trade closed
        self.stops: dict[str, StopState] = {}
        self._closes: dict[str, deque[float]] = {}
        self._bar_ms: dict[str, int] = {}
        self._tf_ms: dict[str, int] = {}

    def state_dict(self) -> dict[str, object]:
        """What the engine must remember between runs of one account."""
        return {"state": str(self.state), "peak_equity": self.peak_equity, "day": self._day,
                "day_start_equity": self._day_start_equity, "reducing_day": self._reducing_day,
                "bars_seen": dict(self.bars_seen), "loss_at": dict(self.loss_at),
                "stops": {k: asdict(v) for k, v in self.stops.items()}}

    def load_state(self, raw: dict[str, object]) -> None:
        """Continue from :meth:`state_dict` (dates may come back as ISO strings)."""
        def day(v: object) -> date | None:
            return None if v is None else v if isinstance(v, date) else date.fromisoformat(str(v))

        self.state = TradingState(str(raw["state"]))
        peak, start = raw["peak_equity"], raw["day_start_equity"]
        self.peak_equity = None if peak is None else float(str(peak))
        self._day_start_equity = None if start is None else float(str(start))
        self._day, self._reducing_day = day(raw["day"]), day(raw["reducing_day"])
        self.bars_seen = {str(k): int(str(v)) for k, v in dict(raw.get("bars_seen") or {}).items()}  # type: ignore[call-overload]
        self.loss_at = {str(k): int(str(v)) for k, v in dict(raw.get("loss_at") or {}).items()}  # type: ignore[call-overload]
        self.stops = {str(k): StopState(**v) for k, v in dict(raw.get("stops") or {}).items()}  # type: ignore[call-overload]

    @property
    def halt_reason(self) -> str:
        """Why the engine is HALTED (the reason of the last transition into it), or ''."""
        if self.state is not TradingState.HALTED:
            return ""
        return next((r for _, st, r in reversed(self.transitions) if st is TradingState.HALTED), "restored halt")

    def set_state(self, state: TradingState, ts: datetime, reason: str) -> None:
        """Change state (also the operator's way to resume after a halt).

        Logged at info: a transition is a result of the run, kept in :attr:`transitions` and reported by
        the backtest and the main job; the live session warns when it halts (``session.halted``).
        """
        if state is not self.state:
            log.info(
                "risk.state",
                extra={"from": str(self.state), "to": str(state), "reason": reason, "ts": ts.isoformat()},
            )
            self.state = state
            self.transitions.append((ts, state, reason))

    def on_equity(self, equity: float, ts: datetime) -> None:
        """Feed the marked-to-market equity (once per bar); may move to REDUCING or HALTED."""
        day = ts.date()
        if self._day != day:
            self._day, self._day_start_equity = day, equity
            if self.state is TradingState.REDUCING and self._reducing_day != day:
                self.set_state(TradingState.ACTIVE, ts, "new trading day")
        self.peak_equity = equity if self.peak_equity is None else max(self.peak_equity, equity)
        if self.state is TradingState.HALTED:
            return
        cfg = self.config
        # compare levels, not ratios: 960 vs 1200 * 0.8 is exact where 1 - 960/1200 is not
        dd_limit = cfg.max_drawdown_pct
        if dd_limit is not None and self.peak_equity > 0 and equity <= self.peak_equity * (1 - dd_limit):
            dd = 1 - equity / self.peak_equity
            self.set_state(TradingState.HALTED, ts, f"drawdown {dd:.4f} >= max_drawdown_pct {dd_limit}")
            return
        if cfg.max_daily_loss_pct is not None and self._day_start_equity:
            floor = self._day_start_equity * (1 - cfg.max_daily_loss_pct)
            if equity <= floor and self.state is TradingState.ACTIVE:
                loss = 1 - equity / self._day_start_equity
                self._reducing_day = day
                self.set_state(
                    TradingState.REDUCING,
                    ts,
                    f"daily loss {loss:.4f} >= max_daily_loss_pct {cfg.max_daily_loss_pct}",
                )

    # --- per bar: volatility, cooldown counters, protective stops ---------------------------
    def on_bar(self, bar: Bar, position: Position, history: Sequence[Bar] = ()) -> str | None:
        """Advance the instrument's counters with its closed ``bar``; the reason to stop out, or None.

        ``history`` is the instrument's bars up to and including ``bar`` (the node's bounded history).
        A position first seen here starts its stop from its entry price and the ATR of ``history``.
        """
        key = bar.instrument_key
        cfg = self.config
        self.bars_seen[key] = self.bars_seen.get(key, 0) + 1
        ms = self._tf_ms.get(bar.timeframe)  # a Bar's length is its timeframe's (checked when it was made)
        if ms is None:
            ms = self._tf_ms[bar.timeframe] = int((bar.close_time - bar.open_time).total_seconds() * 1000)
        self._bar_ms[key] = ms
        if cfg.vol_target is not None:
            closes = self._closes.setdefault(key, deque(maxlen=cfg.vol_lookback + 1))
            closes.append(bar.close)
        if not cfg.has_stops or position.qty == 0:
            self.stops.pop(key, None)
            return None
        direction = 1 if position.qty > 0 else -1
        st = self.stops.get(key)
        if st is None or st.direction != direction:
            st = self.stops[key] = StopState(direction, position.avg_price, position.avg_price,
                                             self._atr(history))
        level = self.stop_level(key, history)
        hit = level is not None and (bar.low <= level if direction > 0 else bar.high >= level)
        st.peak = max(st.peak, bar.high) if direction > 0 else min(st.peak, bar.low)
        if not hit:
            return None
        assert level is not None
        side = "low" if direction > 0 else "high"
        return (f"protective stop: {key} bar {side} {bar.low if direction > 0 else bar.high} through stop "
                f"{level:.8g} ({self._stop_terms(st)})")

    def stop_level(self, key: str, history: Sequence[Bar] = ()) -> float | None:
        """The current stop level of the position in ``key`` (the tighter of trailing and ATR), or None."""
        st, cfg = self.stops.get(key), self.config
        if st is None:
            return None
        d = st.direction
        levels = []
        if cfg.trailing_stop_pct is not None:
            levels.append(st.peak * (1 - d * cfg.trailing_stop_pct))
        if cfg.atr_stop_mult is not None:
            a = self._atr(history) if cfg.atr_trailing else st.entry_atr
            if a is not None:
                ref = st.peak if cfg.atr_trailing else st.entry_price
                levels.append(ref - d * cfg.atr_stop_mult * a)
        if not levels:
            return None
        return max(levels) if d > 0 else min(levels)

    def _stop_terms(self, st: StopState) -> str:
        cfg, out = self.config, []
        if cfg.trailing_stop_pct is not None:
            out.append(f"trailing_stop_pct {cfg.trailing_stop_pct} from {st.peak:.8g}")
        if cfg.atr_stop_mult is not None:
            out.append(f"atr_stop_mult {cfg.atr_stop_mult} x ATR({cfg.atr_period})")
        return ", ".join(out)

    def _atr(self, history: Sequence[Bar]) -> float | None:
        n = self.config.atr_period
        if self.config.atr_stop_mult is None or len(history) < n + 1:
            return None
        from trader.strategies.indicators import atr  # numba: imported only when an ATR stop is configured

        window = list(history)[-(n + 1):]
        h, lo, c = (cast(Sequence[float], np.array([getattr(b, f) for b in window])) for f in ("high", "low", "close"))
        return float(atr(h, lo, c, n, n))

    def volatility(self, key: str) -> float | None:
        """Annualised volatility of ``key`` from the last ``vol_lookback`` returns (None until known)."""
        closes = self._closes.get(key)
        n = self.config.vol_lookback
        if closes is None or len(closes) < n + 1 or key not in self._bar_ms:
            return None
        from trader.strategies.indicators import stdev  # numba: imported only with a volatility target

        c = list(closes)
        r = cast(Sequence[float], np.array([c[i] / c[i - 1] - 1.0 for i in range(1, len(c))]))
        return float(stdev(r, n - 1, n)) * math.sqrt(YEAR_MS / self._bar_ms[key])

    def on_trade_closed(self, key: str, pnl: float) -> None:
        """A round trip in ``key`` closed with ``pnl`` (net of fees): a loss starts the cooldown."""
        if pnl < 0 and self.config.loss_cooldown_bars is not None:
            self.loss_at[key] = self.bars_seen.get(key, 0)

    def cooldown_left(self, key: str) -> int:
        """Bars of ``key`` (including the current one) on which entries are still refused."""
        n = self.config.loss_cooldown_bars
        if n is None or key not in self.loss_at:
            return 0
        return max(0, n - (self.bars_seen.get(key, 0) - self.loss_at[key]) + 1)

    def check(
        self,
        intent: OrderIntent,
        position: Position,
        last_price: float | None,
        ts: datetime,
        account: AccountExposure | None = None,
    ) -> Order | Rejection:
        """Approve ``intent`` as an :class:`Order` or reject it with the reason.

        Without ``account`` the account-wide exposure limits cannot be checked and are skipped
        (drawdown and daily loss still apply: they come from :meth:`on_equity`).
        """
        if intent.is_cancel:
            return Order.from_intent(intent, ts, reduce_only=False, oco_group=None, tag="cancel")
        signed = intent.qty if intent.side is Side.BUY else -intent.qty
        after = position.qty + signed
        reduces = position.qty != 0 and abs(after) <= abs(position.qty) and after * position.qty >= 0
        if self.state is TradingState.HALTED and not reduces:
            return self._reject(intent, ts, f"trading HALTED ({self.halt_reason}): only cancels and exits pass")
        if self.state is TradingState.REDUCING and not reduces:
            return self._reject(intent, ts, f"trading REDUCING: order would not reduce position {position.qty}")
        if intent.reduce_only and not reduces:
            return self._reject(intent, ts, f"reduce_only order would not reduce position {position.qty}")
        price = intent.price if intent.price is not None else last_price
        if price is None:
            return self._reject(intent, ts, "no price known yet to value the order")
        cfg = self.config
        key = intent.instrument_key
        if not reduces and self.cooldown_left(key) > 0:
            return self._reject(intent, ts, f"{intent.symbol}: cooldown after a losing trade, "
                                            f"{self.cooldown_left(key)} of loss_cooldown_bars "
                                            f"{cfg.loss_cooldown_bars} bars left")
        sized_note = ""
        if not reduces and cfg.vol_target is not None and account is not None:
            vol = self.volatility(key)
            if vol is None:
                return self._reject(intent, ts, f"{intent.symbol}: volatility unknown yet "
                                                f"(vol_target needs {cfg.vol_lookback + 1} closes)")
            cap = cfg.vol_target * account.equity / vol if vol > 0 else math.inf
            if abs(after) * price > cap:
                inst = self.instruments.get(key)
                direction = 1 if intent.side is Side.BUY else -1
                qty = round_qty(max(cap / price - position.qty * direction, 0.0), inst.qty_decimals if inst else 8)
                if qty <= 0:
                    return self._reject(intent, ts, f"{intent.symbol}: vol_target {cfg.vol_target} caps the "
                                                    f"position at {cap:.2f} (vol {vol:.4f}); already "
                                                    f"{abs(position.qty) * price:.2f}")
                sized_note = (f"sized by vol_target {cfg.vol_target}: qty {intent.qty} -> {qty} "
                              f"(vol {vol:.4f}, cap {cap:.2f})")
                log.debug("risk.sized", extra={"client_id": intent.client_id, "reason": sized_note})
                signed = qty if intent.side is Side.BUY else -qty
                after = position.qty + signed
                intent = OrderIntent(intent.action, intent.client_id, intent.exchange, intent.symbol, intent.side,
                                     intent.type, qty, intent.price, intent.reduce_only, intent.oco_group,
                                     intent.tag)
        notional = intent.qty * price
        order_limit = cfg.order_limit(intent.symbol)
        if order_limit is not None and notional > order_limit and not reduces:
            return self._reject(
                intent, ts, f"{intent.symbol}: order notional {notional:.2f} > max_order_notional {order_limit}"
            )
        pos_notional = abs(after) * price
        position_limit = cfg.position_limit(intent.symbol)
        if position_limit is not None and not reduces and pos_notional > position_limit:
            return self._reject(
                intent,
                ts,
                f"{intent.symbol}: position notional {pos_notional:.2f} > max_position_notional {position_limit}",
            )
        if account is not None and not reduces:
            venue_limit = cfg.venue_limit(intent.exchange)
            if venue_limit is not None and account.other_venue_notional + pos_notional > venue_limit:
                return self._reject(
                    intent, ts, f"venue {intent.exchange}: gross notional "
                                f"{account.other_venue_notional + pos_notional:.2f} > max_venue_notional {venue_limit}")
            if cfg.max_open_positions is not None and after != 0 and position.qty == 0:
                held = account.other_open_positions + 1
                if held > cfg.max_open_positions:
                    return self._reject(
                        intent, ts, f"open positions {held} > max_open_positions {cfg.max_open_positions}"
                    )
            if cfg.max_gross_exposure is not None:
                gross = account.other_gross_notional + pos_notional
                if account.equity <= 0 or gross > cfg.max_gross_exposure * account.equity:
                    ratio = gross / account.equity if account.equity > 0 else float("inf")
                    return self._reject(
                        intent,
                        ts,
                        f"gross exposure {ratio:.4f} x equity > max_gross_exposure {cfg.max_gross_exposure}",
                    )
        return Order.from_intent(intent, ts, reason=sized_note)

    def _reject(self, intent: OrderIntent, ts: datetime, reason: str) -> Rejection:
        log.debug("risk.rejected", extra={"client_id": intent.client_id, "reason": reason})
        return Rejection(intent, reason, ts)
