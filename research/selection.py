"""The selector's members and regime map, chosen on validation data only.

:func:`choose_selector` takes each instrument's **validation** bars (and the model's validation
probabilities, when there is a model) and decides, before any test bar is seen:

1. the ML member's thresholds, by :func:`trader.strategies.mlsignal.cost_aware_thresholds` (the pair with
   the best net return per bar after fees and slippage, or "do not trade");
2. the member per regime: every candidate member is run alone over the validation bars (bar members by
   the vectorised engine, i.e. the node's fills and costs; the ML member by the cost-aware replay), each
   round trip is attributed to the regime (:func:`trader.regimes.regime_at`) at the bar its entry was
   decided, and each regime gets the member whose trades there earned the most net log return, provided
   it is positive over at least ``min_trades`` round trips; otherwise the regime is traded as ``cash``.

The scores table and a reason per regime are returned for the report. This is a heuristic on
standalone runs: inside the selector a member only trades while its regime is chosen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from trader.domain import Instrument
from trader.execution.paper import PaperConfig
from trader.regimes import REGIMES, RegimeConfig, regime_at
from trader.strategies.mlsignal import ThresholdChoice, cost_aware_thresholds, replay_trades
from trader.strategies.registry import build_strategy, parse_strategy_config
from trader.strategies.selector import CASH, SelectorConfig
from trader.strategies.signal import SignalStrategy

ML = "ml"
SCORE_COLUMNS = ["member", "regime", "trades", "net_log_return"]


@dataclass(frozen=True)
class SelectorChoice:
    """The selector config chosen on validation, the ML thresholds and the evidence."""

    config: SelectorConfig
    thresholds: ThresholdChoice | None
    scores: pd.DataFrame
    reasons: dict[str, str]
    validation: dict[str, Any] = field(default_factory=dict)
    saved: dict[str, Any] | None = None  # the record of a choice read back from its cache

    def record(self) -> dict[str, Any]:
        """JSON-able summary (for the trade task's result and the report)."""
        if self.saved is not None:
            return dict(self.saved)
        th = self.thresholds
        return {
            "by_regime": dict(self.config.by_regime), "reasons": dict(self.reasons),
            "members": sorted(self.config.members),
            "ml_thresholds": None if th is None else {
                "enter": th.enter_threshold, "exit": th.exit_threshold, "trades": th.trades,
                "net_bps_per_bar": round(th.net_return_per_bar * 1e4, 4), "reason": th.reason},
            "scores": self.scores.round(6).to_dict(orient="records"), "validation": dict(self.validation),
        }


def regimes_of(frame: pd.DataFrame, cfg: RegimeConfig) -> np.ndarray:
    """The regime at every bar of one instrument's bars ('' before the indicators' warm-up)."""
    h, lo, c = (frame[k].to_numpy(dtype=float) for k in ("high", "low", "close"))
    out = np.full(len(c), "", dtype=object)
    for t in range(cfg.lookback - 1, len(c)):
        out[t] = regime_at(h, lo, c, t, cfg)[0]
    return out


def next_open_returns(frame: pd.DataFrame) -> np.ndarray:
    """``open[t + 2] / open[t + 1] - 1``: what a decision at bar ``t``'s close holds over the next bar."""
    o = frame["open"].to_numpy(dtype=float)
    r = np.full(len(o), np.nan)
    if len(o) > 2:
        r[:-2] = o[2:] / o[1:-1] - 1.0
    return r


def _bar_member_trades(member: Any, frame: pd.DataFrame, inst: Instrument, paper: PaperConfig
                       ) -> list[tuple[int, float]]:
    from research.vector import bar_columns, run_vector

    strategy = build_strategy(member, [inst])
    assert isinstance(strategy, SignalStrategy)
    res = run_vector(strategy, bar_columns(frame), cash=10_000.0, paper=paper, instrument=inst)
    t = res.trades
    basis = (t.entry_price * t.qty).to_numpy()
    net = np.log1p(t.pnl.to_numpy() / np.where(basis > 0, basis, np.nan))
    return list(zip((t.entry_bar.to_numpy() - 1).tolist(), net.tolist(), strict=True))


def choose_selector(
    frames: Mapping[str, pd.DataFrame], instruments: Mapping[str, Instrument], *, paper: PaperConfig,
    members: Mapping[str, Any] | None = None, with_ml: bool = True, regime: RegimeConfig | None = None,
    confirm_bars: int = 3, min_trades: int = 3, ml_min_trades: int = 5,
) -> SelectorChoice:
    """Choose the selector on validation bars (see the module). ``frames``: per symbol, its valid bars in time
    order (``open_time``, OHLCV) with a ``probability`` column (NaN where the model gave none) and optionally a
    ``validation`` column (False: a bar before the segment, for the indicators' warm-up only: no decision there
    is scored)."""
    regime = regime or RegimeConfig()
    members = dict(members if members is not None else {"swing": {"kind": "swing"}, "day": {"kind": "daytrade"}})
    parsed = {name: parse_strategy_config(m) for name, m in members.items()}
    regimes = {sym: regimes_of(f, regime) for sym, f in frames.items()}
    scored_bars = {sym: (f["validation"].to_numpy(dtype=bool) if "validation" in f else np.ones(len(f), bool))
                   for sym, f in frames.items()}
    rows: list[tuple[str, str, float]] = []
    for name, cfg in parsed.items():
        for sym, f in frames.items():
            for t, net in _bar_member_trades(cfg, f, instruments[sym], paper):
                if scored_bars[sym][t]:
                    rows.append((name, str(regimes[sym][t]), net))
    thresholds: ThresholdChoice | None = None
    if with_ml:
        series, index = [], []
        for sym, f in frames.items():
            p = f["probability"].to_numpy(dtype=float)
            scored = np.flatnonzero(np.isfinite(p) & scored_bars[sym])
            series.append((p[scored], next_open_returns(f)[scored]))
            index.append((sym, scored))
        thresholds = cost_aware_thresholds(series, fee_bps=paper.taker_fee_bps, slippage_bps=paper.slippage_bps,
                                           min_trades=ml_min_trades)
        cost = (paper.taker_fee_bps + paper.slippage_bps) / 10_000
        if thresholds.enter_threshold < 1.0:
            for (probs, rets), (sym, scored) in zip(series, index, strict=True):
                for i, net in replay_trades(probs, rets, thresholds.enter_threshold, thresholds.exit_threshold,
                                            cost):
                    rows.append((ML, str(regimes[sym][scored[i]]), net))
    raw = pd.DataFrame(rows, columns=["member", "regime", "net"])
    raw = raw[raw.regime.isin(REGIMES)]
    scores = (raw.groupby(["member", "regime"]).net.agg(["count", "sum"]).reset_index()
              .rename(columns={"count": "trades", "sum": "net_log_return"}))
    by_regime: dict[str, str] = {}
    reasons: dict[str, str] = {}
    for reg in REGIMES:
        here = scores[scores.regime == reg].sort_values(["net_log_return", "member"], ascending=[False, True])
        seen = ", ".join(f"{m} {float(v) * 100:+.2f} % ({int(n)})"
                         for m, v, n in zip(here.member, here.net_log_return, here.trades, strict=True))
        ok = here[(here.trades >= min_trades) & (here.net_log_return > 0)]
        if ok.empty:
            by_regime[reg] = CASH
            reasons[reg] = f"cash: no member earned net of costs over >= {min_trades} trades ({seen or 'no trades'})"
        else:
            by_regime[reg] = str(ok.iloc[0].member)
            reasons[reg] = f"{by_regime[reg]}: best net log return on validation ({seen})"
    chosen = dict(members)
    if thresholds is not None:
        chosen[ML] = thresholds.config(name=ML).model_dump()
    used = {m for m in by_regime.values() if m != CASH}
    config = SelectorConfig(members={k: v for k, v in chosen.items() if k in used} or {k: v for k, v in chosen.items()
                                                                                        if k != ML},
                            by_regime=by_regime, confirm_bars=confirm_bars, regime=regime)
    used_bars = [f[scored_bars[sym]] for sym, f in frames.items()]
    return SelectorChoice(config, thresholds, scores[SCORE_COLUMNS], reasons,
                          {"bars": {sym: int(scored_bars[sym].sum()) for sym in frames},
                           "from": str(min(f.open_time.min() for f in used_bars)),
                           "until": str(max(f.open_time.max() for f in used_bars))})
