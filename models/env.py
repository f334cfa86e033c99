"""A gymnasium environment over the trading node's backtest rules, for the PPO agent.

The agent decides at a bar's close: action 1 = be long (target position: ``fraction`` of equity),
0 = be flat. The observation is the feature window exactly as the supervised nets get it: the
last ``window`` rows of the gold feature columns, standardised with training statistics
(:mod:`models.windows`), flattened. It does not include the position: the policy is a function of
the window alone, so it scores like any model (``models.ppo.PpoModel.predict`` -> probability of
the long action) and its decisions never depend on where the data starts.

:class:`Account` is the trading node's arithmetic for one instrument in one account, step for
step: the strategy ``ppo`` (``trader/strategies/ppo.py``) sizes an entry as
``StrategyContext.entry_qty`` does (``fraction`` of equity at the last close, capped by cash less
``cash_reserve``, rounded down to the lot), the risk engine (``trader/risk.py``) rejects an entry
above ``max_order_notional`` / ``max_position_notional`` / ``max_gross_exposure`` and every entry
once HALTED (drawdown) or REDUCING (daily loss), exits always pass; the paper venue fills the
market order at the next bar's open moved by ``slippage_bps``, rounded to the tick, with the taker
fee rounded to 8 decimals; the portfolio books ``cash -= signed qty * price + fee`` and marks at the
close. ``models`` may not import ``trader`` (import-linter layers), so the rules are restated here
and ``tests/trader/strategies/test_ppo_strategy.py`` proves the equality: for a fixed action
sequence on real candles the env's equity equals the node's backtest to the cent, limits included.
The reward is the log change of the marked equity over the bar (times ``reward_scale``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from cryptolake.errors import DataValidationError

FEE_DECIMALS = 8  # the paper venue's fee rounding (trader.domain.FEE_DECIMALS)


class ExecutionRules(BaseModel):
    """The node's costs and limits for one instrument (defaults = ``TraderConfig()``'s; a test checks it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    initial_cash: float = Field(default=10_000.0, gt=0)
    taker_fee_bps: float = Field(default=10.0, ge=0, le=1000)
    slippage_bps: float = Field(default=5.0, ge=0, le=1000)
    price_decimals: int = Field(default=2, ge=0, le=12)
    qty_decimals: int = Field(default=6, ge=0, le=12)
    fraction: float = Field(default=1.0, gt=0, le=1.0, description="Equity per long position (strategy ppo)")
    cash_reserve: float = Field(default=0.01, ge=0, lt=1.0, description="Free cash an entry leaves unspent")
    max_order_notional: float | None = Field(default=None, gt=0)
    max_position_notional: float | None = Field(default=None, gt=0)
    max_gross_exposure: float | None = Field(default=None, gt=0)
    max_drawdown_pct: float | None = Field(default=0.5, gt=0, lt=1)
    max_daily_loss_pct: float | None = Field(default=None, gt=0, lt=1)


def round_qty(qty: float, decimals: int) -> float:
    """Round down to the lot, as ``trader.domain.round_qty``."""
    scale = 10**decimals
    return math.floor(qty * scale + 1e-9) / scale


class Account:
    """One instrument's account under :class:`ExecutionRules` (see the module for what it mirrors)."""

    def __init__(self, rules: ExecutionRules) -> None:
        self.rules = rules
        self.cash = rules.initial_cash
        self.qty = 0.0
        self.price = math.nan  # last close
        self.state = "active"
        self.peak: float | None = None
        self.day: int | None = None
        self.day_start: float | None = None
        self.reducing_day: int | None = None
        self.fills = 0
        self.fees = 0.0
        self.rejected = 0

    def equity(self) -> float:
        return self.cash + (self.qty * self.price if self.qty else 0.0)

    def mark(self, close: float, day: int) -> float:
        """Mark at a bar's close and feed the risk state (``RiskEngine.on_equity``); returns equity."""
        self.price = close
        equity = self.equity()
        r = self.rules
        if self.day != day:
            self.day, self.day_start = day, equity
            if self.state == "reducing" and self.reducing_day != day:
                self.state = "active"
        self.peak = equity if self.peak is None else max(self.peak, equity)
        if self.state == "halted":
            return equity
        if r.max_drawdown_pct is not None and self.peak > 0 and equity <= self.peak * (1 - r.max_drawdown_pct):
            self.state = "halted"
            return equity
        limit = r.max_daily_loss_pct
        if limit is not None and self.day_start and equity <= self.day_start * (1 - limit) and self.state == "active":
            self.reducing_day, self.state = day, "reducing"
        return equity

    def order(self, long: bool) -> float:
        """The signed quantity the strategy sends and the risk engine passes for target ``long`` (0 = none)."""
        r = self.rules
        if not long:
            return -self.qty if self.qty > 0 else 0.0
        if self.qty != 0:
            return 0.0
        equity = self.equity()
        budget = min(r.fraction * equity, self.cash * (1.0 - r.cash_reserve))
        if budget <= 0:
            return 0.0
        qty = max(round_qty(budget / self.price, r.qty_decimals), 0.0)
        if qty <= 0:
            return 0.0
        notional = qty * self.price
        if (self.state != "active"
                or (r.max_order_notional is not None and notional > r.max_order_notional)
                or (r.max_position_notional is not None and abs(qty) * self.price > r.max_position_notional)
                or (r.max_gross_exposure is not None
                    and (equity <= 0 or abs(qty) * self.price > r.max_gross_exposure * equity))):
            self.rejected += 1
            return 0.0
        return qty

    def fill(self, signed: float, open_price: float) -> None:
        """Fill a market order at the bar's open with slippage and the taker fee."""
        r = self.rules
        factor = r.slippage_bps / 10_000
        raw = open_price * (1 + factor) if signed > 0 else open_price * (1 - factor)
        price = round(raw, r.price_decimals)
        qty = abs(signed)
        fee = round(price * qty * r.taker_fee_bps / 10_000, FEE_DECIMALS)
        after = self.qty + signed
        self.qty = round_qty(after, r.qty_decimals) if after >= 0 else -round_qty(-after, r.qty_decimals)
        self.cash -= signed * price + fee
        self.fees += fee
        self.fills += 1


@dataclass(frozen=True)
class MarketData:
    """What the env steps over: standardised features and the bars' prices, in sorted-frame row order.

    ``chunks`` are runs of consecutive rows a step may start at: each ends a complete window and the
    next row is the next bar of the same contiguous series (``open``/``close``/``day`` of row r+1
    are what the step after a decision at r uses).
    """

    x: np.ndarray  # (rows, features) float32, standardised
    open: np.ndarray
    close: np.ndarray
    day: np.ndarray  # UTC day ordinal of each bar's close time (the risk engine's trading day)
    window: int
    chunks: tuple[tuple[int, int], ...]  # [first, last] decision rows, inclusive
    series: tuple[str, ...]  # the series (exchange:symbol:timeframe) of each chunk

    @property
    def obs_size(self) -> int:
        return self.window * self.x.shape[1]

    def observation(self, row: int) -> np.ndarray:
        return self.x[row - self.window + 1 : row + 1].reshape(-1)

    def observations(self, rows: np.ndarray) -> np.ndarray:
        offsets = np.arange(-self.window + 1, 1)
        return self.x[rows[:, None] + offsets[None, :]].reshape(len(rows), -1)

    def decision_rows(self) -> np.ndarray:
        if not self.chunks:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([np.arange(a, b + 1) for a, b in self.chunks]).astype(np.int64)


def market_data(frame: pd.DataFrame, x: np.ndarray, rows: np.ndarray, run: np.ndarray, window: int,
                end: pd.Timestamp | None = None) -> MarketData:
    """The :class:`MarketData` of decision ``rows`` (window ends) of a sorted frame with ``open`` and ``close``.

    A row can be a decision row only if the next row belongs to the same contiguous run (``run``:
    :func:`models.windows.run_ids`) and, with ``end``, opens before ``end`` (its segment's end).
    """
    for col in ("open", "close"):
        if col not in frame.columns:
            raise DataValidationError(col, list(frame.columns), "the PPO env needs the bars' open and close "
                                      "(pass the silver bars to fit)")
    opens = frame["open"].to_numpy(dtype=np.float64)
    closes = frame["close"].to_numpy(dtype=np.float64)
    bad = ~(np.isfinite(opens) & np.isfinite(closes) & (opens > 0) & (closes > 0))
    ts = pd.to_datetime(frame["ts"], utc=True)
    close_time = pd.to_datetime(frame["close_time"], utc=True)
    day = ((close_time - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(days=1)).to_numpy(np.int64)
    rows = np.asarray(rows, dtype=np.int64)
    rows = rows[rows + 1 < len(frame)]
    ok = (run[rows + 1] == run[rows]) & (run[rows] >= 0) & ~bad[rows] & ~bad[rows + 1]
    if end is not None:
        ok &= (ts.iloc[rows + 1] < end).to_numpy()
    rows = np.sort(rows[ok])
    chunks: list[tuple[int, int]] = []
    series: list[str] = []
    if len(rows):
        breaks = np.flatnonzero(np.diff(rows) != 1)
        starts = np.r_[0, breaks + 1]
        stops = np.r_[breaks, len(rows) - 1]
        names = (frame["exchange"].astype(str) + ":" + frame["symbol"].astype(str) + ":"
                 + frame["timeframe"].astype(str)).to_numpy()
        for a, b in zip(starts, stops, strict=True):
            chunks.append((int(rows[a]), int(rows[b])))
            series.append(str(names[rows[a]]))
    return MarketData(x=x, open=opens, close=closes, day=day, window=window, chunks=tuple(chunks),
                      series=tuple(series))


def simulate(market: MarketData, first: int, actions: Sequence[int] | np.ndarray, rules: ExecutionRules
             ) -> tuple[np.ndarray, Account]:
    """Equity at the close of bar ``first`` and after each action (decided at rows first, first + 1, ...).

    Returns ``len(actions) + 1`` equity values and the final account (fills, fees, rejections).
    """
    account = Account(rules)
    out = np.empty(len(actions) + 1)
    out[0] = account.mark(float(market.close[first]), int(market.day[first]))
    for i, action in enumerate(actions):
        row = first + i
        signed = account.order(bool(action))
        if signed:
            account.fill(signed, float(market.open[row + 1]))
        out[i + 1] = account.mark(float(market.close[row + 1]), int(market.day[row + 1]))
    return out, account


class TradingEnv(gymnasium.Env[np.ndarray, np.int64]):
    """Long/flat trading of one chunk of bars at a time under the node's rules (see the module).

    ``reset`` starts flat with ``initial_cash`` at a random decision row (``np_random``: seeded by
    ``reset(seed=...)``) with ``episode_bars`` steps left, or the row ``options["start"]``. An
    episode is truncated after ``episode_bars`` steps or at its chunk's last decision row.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium's class attribute)

    def __init__(self, market: MarketData, rules: ExecutionRules, episode_bars: int = 256,
                 reward_scale: float = 100.0) -> None:
        if not market.chunks:
            raise DataValidationError("market.chunks", 0, "no decision rows to trade (too few contiguous bars)")
        if episode_bars < 1:
            raise DataValidationError("episode_bars", episode_bars, "must be >= 1")
        self.market, self.rules = market, rules
        self.episode_bars, self.reward_scale = episode_bars, reward_scale
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (market.obs_size,), np.float32)
        self.action_space = gymnasium.spaces.Discrete(2)
        lengths = np.array([b - a + 1 for a, b in market.chunks], dtype=np.float64)
        self._weights = lengths / lengths.sum()
        self.row = self.last = 0
        self.account = Account(rules)
        self.equity = rules.initial_cash

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if options and "start" in options:
            start = int(options["start"])
            chunk = next((c for c in self.market.chunks if c[0] <= start <= c[1]), None)
            if chunk is None:
                raise DataValidationError("start", start, "is not a decision row of this env")
        else:
            chunk = self.market.chunks[int(self.np_random.choice(len(self.market.chunks), p=self._weights))]
            start = int(self.np_random.integers(chunk[0], chunk[1] + 1))
        self.row, self.last = start, min(chunk[1], start + self.episode_bars - 1)
        self.account = Account(self.rules)
        self.equity = self.account.mark(float(self.market.close[start]), int(self.market.day[start]))
        return self.market.observation(start), {"row": start}

    def step(self, action: np.int64 | int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        m, row = self.market, self.row
        signed = self.account.order(bool(action))
        if signed:
            self.account.fill(signed, float(m.open[row + 1]))
        equity = self.account.mark(float(m.close[row + 1]), int(m.day[row + 1]))
        reward = math.log(equity / self.equity) * self.reward_scale if equity > 0 and self.equity > 0 else -1.0
        self.equity = equity
        truncated = row >= self.last
        self.row = row + 1
        return m.observation(self.row), reward, False, truncated, {"equity": equity, "row": row}
