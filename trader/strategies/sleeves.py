"""Sleeves: one portfolio across strategies and venues, inside one account of one trading node.

A *sleeve* is one member strategy trading one instrument (``exchange:symbol``, any of the node's venues).
Every (instrument, member) pair is a sleeve (a member's ``symbols``, symbols or ``exchange:symbol`` keys,
restricts it). Each sleeve keeps its own books (a :class:`~trader.portfolio.Portfolio` of one instrument:
cash, position, fees, round trips) inside the account, so the account's cash is the sum of the sleeves'
cash, its position in an instrument the sum of its sleeves' positions, and its equity the sum of the
sleeves' equity. A member sees only its sleeve (:class:`~trader.strategy.StrategyContext` with the
sleeve's cash, equity, position and orders), so it sizes its orders from its sleeve's equity: its weight
of the account's equity.

Weights (:func:`trader.allocation.target_weights`, the project's skfolio allocator) are estimated on the
sleeves' own equity returns between full closes (closes at which every instrument has a bar; returns are
measured from each sleeve's equity after the last rebalance, so capital moved between sleeves is not a
return), over the trailing ``allocation.lookback`` full closes, point in time. A sleeve flat through the
whole window (zero variance) tells the allocator nothing: it keeps its previous target and the others
share the rest in the allocator's proportions (fitted with ``max_weight / (1 - kept)``, so that every
weight stays within ``max_weight``). Until ``lookback`` returns exist the targets are equal.

A rebalance, at a full close after every member has decided on it, is due

* at the first call (``initial``: the account's cash split equally; no trades);
* when the first ``lookback`` returns exist (``first estimate``);
* on schedule, ``allocation.every_bars`` full closes after the last rebalance;
* on drift, when a sleeve's equity weight is more than ``allocation.drift`` from its target;

and waits (kept due) while any order of the portfolio is open, so a rebalance never races an entry.
It sets each sleeve's equity to ``target x account equity`` at the close: a sleeve holding a position keeps
its exposure, ``qty x target / equity`` (rounded down to the lot), by a market order for the difference
(skipped below ``min_trade`` of the account's equity; sells reduce-only), and cash moves between sleeves
so that each sleeve's equity is its target. Fills, fees and slippage are the venue's (next open): the
costs are the sleeves' own. The risk engine checks every order, the rebalances' included, against the
account's and each venue's limits (``RiskConfig.per_venue``). Orders the node sends itself (a protective
stop, a flatten on halt) are attributed to the sleeves holding the instrument in proportion to their
quantities.

Members are long/flat signal strategies or ``mlsignal``; protective orders resting at the venue
(``stop_loss_pct``, ``take_profit_pct``) are refused because a rebalance would leave them sized for the
old position. Sleeve books are not carried between runs: the portfolio starts from a flat account.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator

from trader.allocation import AllocationConfig, target_weights
from trader.domain import FEE_DECIMALS, Bar, Fill, Instrument, OrderIntent, Side, Signal, round_qty
from trader.portfolio import Portfolio
from trader.strategies.mlsignal import MlSignalStrategy
from trader.strategies.registry import build_strategy, parse_strategy_config, register_strategy, resolve_strategy
from trader.strategies.signal import SignalConfig, SignalStrategy
from trader.strategy import Strategy, StrategyConfig, StrategyContext

REBALANCE = "rebalance"


class SleevesConfig(StrategyConfig):
    """The members (each runs one sleeve per instrument it trades), the allocation and the rebalance sizing."""

    kind: str = "sleeves"
    members: dict[str, Any] = Field(
        default={"swing": {"kind": "swing"}, "breakout": {"kind": "breakout"}}, validate_default=True,
        description="Member strategies by name (letters and digits, at most 12)")
    allocation: AllocationConfig = AllocationConfig(lookback=96, every_bars=48, drift=0.05)
    min_trade: float = Field(default=0.001, ge=0.0, lt=1.0,
                             description="Smallest rebalance trade, as a fraction of the account's equity")

    @field_validator("members", mode="before")
    @classmethod
    def _parse(cls, v: Any) -> dict[str, StrategyConfig]:
        if not isinstance(v, dict) or not v:
            raise ValueError(f"members must be a non-empty mapping of name -> strategy config, got {v!r}")
        out = {str(name): parse_strategy_config(m) for name, m in v.items()}
        for name, m in out.items():
            if not name.isalnum() or len(name) > 12:
                raise ValueError(f"member name {name!r} must be letters and digits, at most 12 (it names sleeves)")
            if not issubclass(resolve_strategy(m.kind), SignalStrategy | MlSignalStrategy):
                raise ValueError(f"member {name!r} ({m.kind}) is neither a signal nor an mlsignal strategy")
            if isinstance(m, SignalConfig) and (m.stop_loss_pct is not None or m.take_profit_pct is not None):
                raise ValueError(f"member {name!r}: stop_loss_pct/take_profit_pct rest at the venue and a "
                                 "rebalance would leave them sized for the old position; use RiskConfig's stops")
        return out

    @field_validator("allocation")
    @classmethod
    def _long_only(cls, v: AllocationConfig) -> AllocationConfig:
        if not v.long_only:
            raise ValueError("sleeves are long-only (allocation.long_only=False is research only)")
        return v

    @model_validator(mode="after")
    def _name(self) -> SleevesConfig:
        if self.name is not None and "_" in self.name:
            raise ValueError(f"name {self.name!r}: '_' is reserved for sleeve names (member_index)")
        return self


@dataclass
class Sleeve:
    """One member strategy on one instrument, with its own books inside the account."""

    name: str  # <member>_<instrument index>: the prefix of its client order ids
    key: str  # exchange:symbol
    member: str
    strategy: Strategy
    book: Portfolio
    base: float = 0.0  # equity after the last rebalance or full close: returns are measured from it
    allocated: float = 0.0  # initial capital plus the cash moved in by rebalances (PnL = equity - allocated)

    @property
    def label(self) -> str:
        return f"{self.key} {self.member}"

    def equity(self, prices: Mapping[str, float]) -> float:
        """Cash plus the position at ``prices`` (its average price before the first one)."""
        pos = self.book.positions[self.key]
        return self.book.cash + (pos.qty * prices.get(self.key, pos.avg_price) if pos.qty else 0.0)


@dataclass(frozen=True)
class SleeveRebalance:
    """One rebalance: when, why, each sleeve's target weight and equity, and the quantity each traded."""

    ts: datetime
    reason: str
    estimated: bool  # weights from the allocator (False: equal, before ``lookback`` returns)
    weights: dict[str, float]
    equity: dict[str, float]
    trades: dict[str, float] = field(default_factory=dict)  # sleeve -> signed quantity sent


@register_strategy("sleeves")
class SleevesStrategy(Strategy):
    """Runs every sleeve's member on its sleeve's books and holds the sleeves at the allocation's weights."""

    Config = SleevesConfig
    default_name = "slv"

    def __init__(self, config: SleevesConfig, instruments: Sequence[Instrument]) -> None:
        super().__init__(config, instruments)
        self.cfg = config
        self.order = sorted(self.instruments)  # the node's order of bars at one close (event_sort_key)
        self.sleeves: list[Sleeve] = []
        for j, key in enumerate(self.order):
            inst = self.instruments[key]
            for member, mcfg in config.members.items():
                if mcfg.symbols is not None and inst.symbol not in mcfg.symbols and key not in mcfg.symbols:
                    continue
                name = f"{member}_{j}"
                strat = build_strategy(mcfg.model_copy(update={"name": name, "symbols": None}), [inst])
                self.sleeves.append(Sleeve(name, key, member, strat, Portfolio(0.0, [inst])))
        n = len(self.sleeves)
        if n == 0:
            raise ValueError(f"no sleeve: no member trades any of {self.order}")
        if config.allocation.max_weight * n < 1.0 - 1e-12:
            raise ValueError(f"allocation.max_weight={config.allocation.max_weight} cannot sum to 1 over {n} sleeves")
        self.history_bars = max(s.strategy.history_bars for s in self.sleeves)
        self._on: dict[str, list[Sleeve]] = {k: [s for s in self.sleeves if s.key == k] for k in self.order}
        self._owner: dict[str, Sleeve] = {}
        self.returns: deque[np.ndarray] = deque(maxlen=config.allocation.lookback)
        self.target = np.full(n, 1.0 / n)
        self.estimated = False
        self.since = 0
        self.pending: str | None = None
        self.started = False
        self.rebalances: list[SleeveRebalance] = []
        self.points: list[tuple[datetime, np.ndarray]] = []  # sleeve equity at each full close (after rebalance)

    # --- handlers -------------------------------------------------------------------------
    def on_bar(self, bar: Bar, ctx: StrategyContext) -> list[OrderIntent]:
        self._start(ctx)
        key = bar.instrument_key
        out: list[OrderIntent] = []
        for sl in self._on[key]:
            out += self._own(sl, sl.strategy.on_bar(bar, self.sleeve_context(sl, ctx)))
        if key != self.order[-1]:
            return out
        if any(not (h := ctx.history(k, 1)) or h[-1].close_time != bar.close_time for k in self.order):
            return out  # an instrument has no bar at this instant: not a full close
        self._record(ctx)
        reason = self.pending or self._due(ctx)
        mine = [o for o in ctx.open_orders if o.client_id in self._owner or o.client_id.startswith(f"{self.name}-")]
        if reason is not None and (out or mine):
            self.pending = reason  # an order is on its way: rebalance at the next full close
        elif reason is not None:
            out += self._rebalance(ctx, bar.close_time, reason)
        self.points.append((bar.close_time, self._equities(ctx)))
        return out

    def on_signal(self, signal: Signal, ctx: StrategyContext) -> list[OrderIntent]:
        self._start(ctx)
        out: list[OrderIntent] = []
        for sl in self._on[signal.instrument_key]:
            out += self._own(sl, sl.strategy.on_signal(signal, self.sleeve_context(sl, ctx)))
        return out

    def on_fill(self, fill: Fill, ctx: StrategyContext) -> list[OrderIntent]:
        owner = self._owner.get(fill.client_id)
        if owner is None:  # the node's own order (protective stop, flatten): the holders share it
            for sl, part in self._pro_rata(fill):
                sl.book.apply(part)
            return []
        owner.book.apply(fill)
        if fill.tag == REBALANCE:
            return []
        return self._own(owner, owner.strategy.on_fill(fill, self.sleeve_context(owner, ctx)))

    # --- sleeves --------------------------------------------------------------------------
    def sleeve_context(self, sl: Sleeve, ctx: StrategyContext) -> StrategyContext:
        """What the member of ``sl`` sees: the account's market data and the sleeve's books and orders."""
        pos = sl.book.positions[sl.key]
        return StrategyContext(
            now=ctx.now, cash=sl.book.cash, equity=sl.equity(ctx.last_prices),
            positions=MappingProxyType({sl.key: pos}), last_prices=ctx.last_prices,
            open_orders=tuple(o for o in ctx.open_orders if self._owner.get(o.client_id) is sl),
            instruments=ctx.instruments, bars=ctx.bars)

    def _own(self, sl: Sleeve, intents: list[OrderIntent]) -> list[OrderIntent]:
        for intent in intents:
            self._owner.setdefault(intent.client_id, sl)
        return intents

    def _start(self, ctx: StrategyContext) -> None:
        if self.started:
            return
        held = {k: p.qty for k, p in ctx.positions.items() if p.qty}
        if held or ctx.open_orders:
            raise ValueError(f"sleeves start from a flat account (sleeve books are not carried between runs): "
                             f"positions {held}, {len(ctx.open_orders)} open orders")
        self.started = True
        n = len(self.sleeves)
        for sl in self.sleeves:
            sl.book.cash = sl.base = sl.allocated = ctx.cash / n
        self.rebalances.append(SleeveRebalance(ctx.now, "initial", False, self._named(self.target),
                                               {s.name: s.book.cash for s in self.sleeves}))

    def _equities(self, ctx: StrategyContext) -> np.ndarray:
        return np.array([sl.equity(ctx.last_prices) for sl in self.sleeves])

    def _named(self, values: np.ndarray) -> dict[str, float]:
        return {sl.name: float(v) for sl, v in zip(self.sleeves, values, strict=True)}

    def _record(self, ctx: StrategyContext) -> None:
        """The sleeves' returns since the last full close (or rebalance), for the allocator."""
        eq = self._equities(ctx)
        base = np.array([sl.base for sl in self.sleeves])
        self.returns.append(np.divide(eq, base, out=np.ones_like(eq), where=base > 0) - 1.0)
        for sl, e in zip(self.sleeves, eq, strict=True):
            sl.base = float(e)
        self.since += 1

    def _due(self, ctx: StrategyContext) -> str | None:
        a = self.cfg.allocation
        if not self.estimated and len(self.returns) == a.lookback:
            return "first estimate"
        if a.every_bars is not None and self.since >= a.every_bars:
            return "schedule"
        eq = self._equities(ctx)
        total = float(eq.sum())
        if a.drift is not None and total > 0 and float(np.max(np.abs(eq / total - self.target))) > a.drift:
            return "drift"
        return None

    def estimate(self) -> tuple[np.ndarray, bool]:
        """The target weights now: the allocator's on the trailing returns (see module), or equal before
        ``lookback`` of them; and whether they were estimated."""
        a = self.cfg.allocation
        if len(self.returns) < a.lookback:
            return np.full(len(self.sleeves), 1.0 / len(self.sleeves)), False
        frame = pd.DataFrame(np.array(self.returns), columns=[s.name for s in self.sleeves])
        active = frame.std(ddof=0) > 0
        if not active.any():
            return self.target.copy(), True
        kept = float(self.target[~active.to_numpy()].sum())
        if kept >= 1.0:
            return self.target.copy(), True
        # scaled by (1 - kept) afterwards, so the active sleeves' bound is max_weight / (1 - kept): feasible,
        # since their previous targets (each <= max_weight) summed to 1 - kept
        bound = a.model_copy(update={"max_weight": min(1.0, a.max_weight / (1.0 - kept))})
        w = target_weights(frame.loc[:, active], bound).reindex(frame.columns).fillna(0.0).to_numpy()
        out = np.where(active.to_numpy(), w * (1.0 - kept), self.target)
        return out, True

    def _rebalance(self, ctx: StrategyContext, ts: datetime, reason: str) -> list[OrderIntent]:
        target, estimated = self.estimate()
        eq = self._equities(ctx)
        total = float(eq.sum())
        sells: list[OrderIntent] = []
        buys: list[OrderIntent] = []
        trades: dict[str, float] = {}
        for sl, w, e in zip(self.sleeves, target, eq, strict=True):
            pos, inst = sl.book.positions[sl.key], self.instruments[sl.key]
            price = ctx.last_price(sl.key) or pos.avg_price
            goal = float(w) * total
            if pos.qty > 0 and e > 0:
                diff = round_qty(pos.qty * goal / e, inst.qty_decimals) - pos.qty
                diff = round(diff, inst.qty_decimals)
                if diff and abs(diff) * price >= self.cfg.min_trade * total:
                    trades[sl.name] = diff
                    side = Side.BUY if diff > 0 else Side.SELL
                    intent = OrderIntent.market(sl.strategy.next_id(REBALANCE), inst, side, abs(diff),
                                                reduce_only=diff < 0, tag=REBALANCE)
                    (buys if diff > 0 else sells).append(intent)
                    self._owner[intent.client_id] = sl
            sl.book.cash = goal - pos.qty * price  # the sleeve's equity at this close is its target
            sl.allocated += goal - float(e)
            sl.base = goal
        self.target, self.since, self.pending = target, 0, None
        self.estimated = self.estimated or estimated
        self.rebalances.append(SleeveRebalance(ts, reason, estimated, self._named(target), self._named(eq), trades))
        return sells + buys

    def _pro_rata(self, fill: Fill) -> list[tuple[Sleeve, Fill]]:
        """``fill`` split over the sleeves holding its instrument, by quantity (the last takes the rounding)."""
        holders = [s for s in self._on[fill.instrument_key] if s.book.positions[s.key].qty > 0]
        holders = holders or self._on[fill.instrument_key][:1]
        held = sum(s.book.positions[s.key].qty for s in holders)
        decimals = self.instruments[fill.instrument_key].qty_decimals
        out: list[tuple[Sleeve, Fill]] = []
        qty_left, fee_left = fill.qty, fill.fee
        for i, sl in enumerate(holders):
            if i == len(holders) - 1:
                qty, fee = round(qty_left, decimals), round(fee_left, FEE_DECIMALS)
            else:
                share = sl.book.positions[sl.key].qty / held if held > 0 else 0.0
                qty = round(fill.qty * share, decimals)
                fee = round(fill.fee * qty / fill.qty, FEE_DECIMALS) if fill.qty else 0.0
            qty_left, fee_left = qty_left - qty, fee_left - fee
            out.append((sl, replace(fill, qty=qty, fee=fee)))
        return out


def sleeve_equity(strategy: SleevesStrategy) -> pd.DataFrame:
    """Each sleeve's equity at every full close (after any rebalance; index: time; columns: sleeve labels)."""
    labels = [s.label for s in strategy.sleeves]
    return pd.DataFrame([e for _, e in strategy.points], index=pd.DatetimeIndex([t for t, _ in strategy.points]),
                        columns=labels)


def sleeve_weights(strategy: SleevesStrategy) -> pd.DataFrame:
    """Each sleeve's share of the account's equity at every full close (its weight over time)."""
    eq = sleeve_equity(strategy)
    return eq.div(eq.sum(axis=1), axis=0)


def sleeve_pnl(strategy: SleevesStrategy) -> pd.DataFrame:
    """Each sleeve's cumulative PnL at every full close: its equity less the capital it was given (its initial
    share plus the cash rebalances moved in); the columns sum to the account's PnL."""
    eq = sleeve_equity(strategy)
    names = [s.name for s in strategy.sleeves]
    moved = pd.DataFrame(0.0, index=eq.index, columns=eq.columns)
    for r in strategy.rebalances[1:]:
        total = sum(r.equity.values())
        moved.loc[pd.Timestamp(r.ts)] += [r.weights[n] * total - r.equity[n] for n in names]
    initial = np.array([strategy.rebalances[0].equity[n] for n in names])
    return eq - moved.cumsum() - initial


def rebalances_frame(strategy: SleevesStrategy) -> pd.DataFrame:
    """One row per rebalance and sleeve: time, reason, whether estimated, target weight, equity before, traded qty."""
    rows = [{"ts": r.ts, "reason": r.reason, "estimated": r.estimated, "sleeve": s.label,
             "weight": r.weights[s.name], "equity": r.equity[s.name], "traded_qty": r.trades.get(s.name, 0.0)}
            for r in strategy.rebalances for s in strategy.sleeves]
    return pd.DataFrame(rows, columns=["ts", "reason", "estimated", "sleeve", "weight", "equity", "traded_qty"])


def sleeve_summary(strategy: SleevesStrategy, prices: Mapping[str, float]) -> pd.DataFrame:
    """Per sleeve at ``prices``: venue, symbol, member, capital allocated, equity, PnL, fees, round trips."""
    rows = []
    for s in strategy.sleeves:
        ex, _, sym = s.key.partition(":")
        e = s.equity(prices)
        rows.append({"sleeve": s.label, "venue": ex, "symbol": sym, "member": s.member, "allocated": s.allocated,
                     "equity": e, "pnl": e - s.allocated, "fees": s.book.fees_paid, "trades": len(s.book.trades),
                     "qty": s.book.positions[s.key].qty})
    return pd.DataFrame(rows)
