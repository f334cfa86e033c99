"""Kill switches of a running trader: each names the reason the node must stop trading.

Checked by the trading session (:mod:`trader.session`) after every loop; the first that trips puts the
node in HALTED (:meth:`trader.node.TradingNode.halt`: open orders cancelled, cancels always pass,
exits still pass) and the halt is stored, so it survives a restart until a person resets it
(``cryptolake trade reset``). Drawdown is the risk engine's own (``RiskConfig.max_drawdown_pct``);
the daily loss halts here beyond ``halt_daily_loss_pct`` (the risk engine's ``max_daily_loss_pct``
only switches to REDUCING). Rates are over wall time, never bar time.
"""

from __future__ import annotations

import time
from collections import deque

from pydantic import BaseModel, ConfigDict, Field


class KillSwitchConfig(BaseModel):
    """Thresholds; ``None`` switches one off."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stale_bars: int | None = Field(default=3, ge=1, description="HALT after this many bar intervals with no bar")
    bar_interval_s: float | None = Field(default=None, gt=0,
                                         description="Wall seconds per bar (default: the timeframe)")
    max_orders_per_minute: int | None = Field(default=60, ge=1)
    max_reject_rate: float | None = Field(default=None, gt=0, le=1,
                                          description="HALT when this share of the last orders was not accepted")
    reject_window: int = Field(default=20, ge=1)
    max_consecutive_venue_errors: int | None = Field(default=5, ge=1)
    halt_daily_loss_pct: float | None = Field(default=None, gt=0, lt=1)
    flatten_on_halt: bool = Field(default=False, description="Also close every position when halting")


class KillSwitches:
    """State of the switches between checks (what was seen when)."""

    def __init__(self, config: KillSwitchConfig, bar_interval_s: float) -> None:
        self.config = config
        self.bar_interval_s = config.bar_interval_s or bar_interval_s
        self.last_bar = time.monotonic()
        self.orders: deque[tuple[float, bool]] = deque()  # (wall time, rejected)

    def on_bar(self) -> None:
        self.last_bar = time.monotonic()

    def on_order(self, rejected: bool) -> None:
        self.orders.append((time.monotonic(), rejected))

    def check(self, *, consecutive_venue_errors: int = 0, day_loss: float | None = None) -> str | None:
        """The reason to halt now, or None."""
        c, now = self.config, time.monotonic()
        while self.orders and now - self.orders[0][0] > 60 and len(self.orders) > c.reject_window:
            self.orders.popleft()
        if c.stale_bars is not None and now - self.last_bar > c.stale_bars * self.bar_interval_s:
            return (f"stale market data: no bar for {now - self.last_bar:.1f}s > stale_bars {c.stale_bars} x "
                    f"{self.bar_interval_s}s")
        recent = sum(1 for t, _ in self.orders if now - t <= 60)
        if c.max_orders_per_minute is not None and recent > c.max_orders_per_minute:
            return f"order rate {recent}/min > max_orders_per_minute {c.max_orders_per_minute}"
        last = list(self.orders)[-c.reject_window:]
        if c.max_reject_rate is not None and len(last) >= c.reject_window:
            rate = sum(r for _, r in last) / len(last)
            if rate >= c.max_reject_rate:
                return f"reject rate {rate:.2f} over the last {len(last)} orders >= max_reject_rate {c.max_reject_rate}"
        if c.max_consecutive_venue_errors is not None and consecutive_venue_errors >= c.max_consecutive_venue_errors:
            return (f"{consecutive_venue_errors} consecutive venue errors >= max_consecutive_venue_errors "
                    f"{c.max_consecutive_venue_errors}")
        if c.halt_daily_loss_pct is not None and day_loss is not None and day_loss >= c.halt_daily_loss_pct:
            return f"daily loss {day_loss:.4f} >= halt_daily_loss_pct {c.halt_daily_loss_pct}"
        return None
