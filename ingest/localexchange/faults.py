"""Fault injection for the local exchange, switchable per test (Python API or ``/admin/faults``).

Every fault is explicit state with a clear off position; the server consults it on each
request. Times are monotonic seconds from the server's clock.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class FaultSettings(BaseModel):
    """What to break. Defaults break nothing."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    latency_ms: float = Field(0.0, ge=0, description="Added to every REST response")
    storm_s: float = Field(0.0, ge=0, description="Answer every REST request with 429 for this long from now")
    retry_after_s: int = Field(1, ge=0, description="Retry-After header on 429 answers")
    weight_limit: int = Field(0, ge=0, description="Request-weight limit per window; 0 = unlimited")
    weight_window_s: float = Field(60.0, gt=0, description="Window of the weight limiter")
    fail_next: int = Field(0, ge=0, description="Answer the next N REST requests with fail_status")
    fail_status: int = Field(503, ge=500, le=599)
    hang_after_accept_s: float = Field(0.0, ge=0, description="Accept the next order, then hang this long")
    stale: bool = Field(False, description="Freeze market data: replay stops, REST keeps answering")
    max_fill_qty: float = Field(0.0, ge=0, description="Candle markets: a replayed print fills resting orders up to "
                                                       "this much (partial fills); 0 = the candle's volume")
    storm_5xx_every: int = Field(0, ge=0, description="In a storm, every Nth answer is a 503 instead of a 429")
    drop_depth_next: int = Field(0, ge=0, description="Withhold the next N depth diffs from websockets "
                                                      "(the book moves on: a sequence gap for clients)")


@dataclass
class FaultState:
    """Live fault state plus what the server observed (request log for rate assertions)."""

    settings: FaultSettings = field(default_factory=FaultSettings)
    storm_until: float = 0.0
    fail_left: int = 0
    hang_next_order: float = 0.0
    weights: deque[tuple[float, int]] = field(default_factory=deque)
    request_log: list[tuple[float, str, int]] = field(default_factory=list)  # (monotonic, path, status)
    rejected_429: int = 0
    rejected_5xx: int = 0
    depth_drop_left: int = 0
    depth_dropped: int = 0

    def apply(self, **changes: Any) -> FaultSettings:
        """Switch faults on or off; starting a storm or a failure count starts now."""
        self.settings = self.settings.model_copy(update=changes)
        FaultSettings.model_validate(self.settings.model_dump())
        if "storm_s" in changes:
            self.storm_until = time.monotonic() + float(changes["storm_s"])
        if "fail_next" in changes:
            self.fail_left = int(changes["fail_next"])
        if "drop_depth_next" in changes:
            self.depth_drop_left = int(changes["drop_depth_next"])
        if "hang_after_accept_s" in changes:
            self.hang_next_order = float(changes["hang_after_accept_s"])
        return self.settings

    def reset(self) -> None:
        """Everything off, logs cleared."""
        self.settings = FaultSettings()
        self.storm_until = 0.0
        self.fail_left = 0
        self.hang_next_order = 0.0
        self.weights.clear()
        self.request_log.clear()
        self.rejected_429 = 0
        self.rejected_5xx = 0
        self.depth_drop_left = 0
        self.depth_dropped = 0

    def take_depth_drop(self) -> bool:
        """True if this depth diff must be withheld from websocket clients (one of the N)."""
        if self.depth_drop_left <= 0:
            return False
        self.depth_drop_left -= 1
        self.depth_dropped += 1
        return True

    def admit(self, weight: int, now: float | None = None) -> tuple[int, float] | None:
        """None if the request may proceed, else (status, retry_after_s) to answer with."""
        now = time.monotonic() if now is None else now
        s = self.settings
        if now < self.storm_until:
            if s.storm_5xx_every and (self.rejected_429 + self.rejected_5xx) % s.storm_5xx_every == 0:
                self.rejected_5xx += 1
                return 503, 0.0
            self.rejected_429 += 1
            return 429, max(float(s.retry_after_s), 0.0)
        if self.fail_left > 0:
            self.fail_left -= 1
            self.rejected_5xx += 1
            return s.fail_status, 0.0
        if s.weight_limit:
            while self.weights and self.weights[0][0] <= now - s.weight_window_s:
                self.weights.popleft()
            used = sum(w for _, w in self.weights)
            if used + weight > s.weight_limit:
                self.rejected_429 += 1
                wait = self.weights[0][0] + s.weight_window_s - now if self.weights else s.weight_window_s
                return 429, max(wait, float(s.retry_after_s))
            self.weights.append((now, weight))
        return None

    def take_order_hang(self) -> float:
        """Seconds to hang after accepting this order (one-shot)."""
        hang, self.hang_next_order = self.hang_next_order, 0.0
        return hang
