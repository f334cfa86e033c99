"""Whale trades: notional above an absolute floor or a rolling quantile of recent notionals."""

from __future__ import annotations

from collections import deque

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class WhaleConfig(BaseModel):
    """When a trade is a whale. Either rule suffices; the quantile needs ``min_history`` trades first."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    absolute_notional: float | None = Field(None, gt=0, description="Quote-currency notional floor")
    quantile: float | None = Field(0.999, gt=0, lt=1, description="Rolling quantile of notional")
    window: int = Field(5000, ge=10, description="Trades in the rolling window")
    min_history: int = Field(500, ge=1, description="Trades seen before the quantile rule applies")


class WhaleDetector:
    """Stateful per-market detector; the threshold uses only trades seen BEFORE the current one."""

    def __init__(self, config: WhaleConfig | None = None) -> None:
        self.config = config or WhaleConfig()
        self._window: deque[float] = deque(maxlen=self.config.window)

    def threshold(self) -> float | None:
        """The notional a trade must exceed now (None until either rule can apply)."""
        c = self.config
        candidates = []
        if c.absolute_notional is not None:
            candidates.append(c.absolute_notional)
        if c.quantile is not None and len(self._window) >= c.min_history:
            candidates.append(float(np.quantile(np.fromiter(self._window, float), c.quantile)))
        return min(candidates) if candidates else None

    def check(self, price: float, amount: float) -> tuple[bool, float, float | None]:
        """(is_whale, notional, threshold used) for one trade; then the trade joins the window."""
        notional = price * amount
        limit = self.threshold()
        self._window.append(notional)
        return (limit is not None and notional > limit), notional, limit
