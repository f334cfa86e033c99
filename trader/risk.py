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
symbol in ``per_symbol``) and account-wide (``max_gross_exposure``: gross notional of all
positions after the order over equity; ``max_open_positions``; drawdown and daily loss of the
account's equity). Account-wide checks need the :class:`AccountExposure` the engine passes.
Orders that reduce a position are never blocked by size or exposure limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from cryptolake.logs import get_logger
from trader.domain import Order, OrderIntent, Position, Rejection, Side

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

    def order_limit(self, symbol: str) -> float | None:
        """The max order notional for ``symbol``."""
        o = self.per_symbol.get(symbol)
        return o.max_order_notional if o and o.max_order_notional is not None else self.max_order_notional

    def position_limit(self, symbol: str) -> float | None:
        """The max position notional for ``symbol``."""
        o = self.per_symbol.get(symbol)
        return o.max_position_notional if o and o.max_position_notional is not None else self.max_position_notional


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

    def state_dict(self) -> dict[str, object]:
        """What the engine must remember between runs of one account."""
        return {"state": str(self.state), "peak_equity": self.peak_equity, "day": self._day,
                "day_start_equity": self._day_start_equity, "reducing_day": self._reducing_day}

    def load_state(self, raw: dict[str, object]) -> None:
        """Continue from :meth:`state_dict` (dates may come back as ISO strings)."""
        def day(v: object) -> date | None:
            return None if v is None else v if isinstance(v, date) else date.fromisoformat(str(v))

        self.state = TradingState(str(raw["state"]))
        peak, start = raw["peak_equity"], raw["day_start_equity"]
        self.peak_equity = None if peak is None else float(str(peak))
        self._day_start_equity = None if start is None else float(str(start))
        self._day, self._reducing_day = day(raw["day"]), day(raw["reducing_day"])

    @property
    def halt_reason(self) -> str:
        """Why the engine is HALTED (the reason of the last transition into it), or ''."""
        if self.state is not TradingState.HALTED:
            return ""
        return next((r for _, st, r in reversed(self.transitions) if st is TradingState.HALTED), "restored halt")

    def set_state(self, state: TradingState, ts: datetime, reason: str) -> None:
        """Change state (also the operator's way to resume after a halt)."""
        if state is not self.state:
            log.warning(
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
        return Order.from_intent(intent, ts)

    def _reject(self, intent: OrderIntent, ts: datetime, reason: str) -> Rejection:
        log.debug("risk.rejected", extra={"client_id": intent.client_id, "reason": reason})
        return Rejection(intent, reason, ts)
