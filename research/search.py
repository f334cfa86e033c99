"""Parameter search over the vectorised engine: grid, random, Optuna TPE and NSGA-II, walk-forward on Dask.

* The objective of a parameter set is the mean, over the symbols, of the annualised Sharpe of the
  engine's equity curve on the fold (each symbol its own account, the node's fill rules, costs
  included); NSGA-II maximises that Sharpe and minimises the worst maximum drawdown (a Pareto front,
  the chosen point is the front's best Sharpe).
* Walk-forward with ``k`` folds cuts the bars into ``k + 1`` consecutive segments by time; fold ``i``
  optimises on segment ``i`` and evaluates its best parameters on segment ``i + 1`` (rolling, never
  looking ahead). Signals are computed once over the whole series: each depends only on bars up to its
  own, so a segment's decisions are the ones a live run would have taken.
* Folds run as Dask tasks through :func:`cryptolake.compute.dask_client` (a LocalCluster by default).
* Overfitting figures: the deflated Sharpe ratio of the chosen parameters (in-sample returns of the last
  fold, ``n_trials`` = its trials, the variance of its trials' Sharpes) and the PBO by CSCV over the
  per-bar returns of every distinct parameter set tried (:mod:`research.overfit`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from research.overfit import pbo_cscv
from research.vector import signals, simulate
from trader.domain import Instrument
from trader.execution.paper import PaperConfig
from trader.metrics import deflated_sharpe
from trader.strategies.registry import build_strategy, parse_strategy_config
from trader.strategies.signal import SignalStrategy

METHODS = ("grid", "random", "tpe", "nsga2")

#: name -> (type, low, high, grid step) per strategy
SPACES: dict[str, dict[str, tuple[str, float, float, float]]] = {
    "breakout": {"channel": ("int", 12, 240, 12), "exit_channel": ("int", 6, 120, 6),
                 "volume_mult": ("float", 0.0, 2.0, 0.5)},
    "swing": {"fast": ("int", 5, 60, 5), "slow": ("int", 40, 300, 20), "adx_min": ("float", 0.0, 40.0, 10.0),
              "atr_mult": ("float", 1.0, 6.0, 1.0)},
    "daytrade": {"rsi_entry": ("float", 15.0, 45.0, 5.0), "rsi_exit": ("float", 50.0, 75.0, 5.0),
                 "bb_k": ("float", 1.0, 3.0, 0.5)},
}


@dataclass(frozen=True)
class Series:
    """One instrument's valid bars as arrays (:func:`research.vector.bar_columns`)."""

    symbol: str
    arrays: tuple[np.ndarray, ...]


@dataclass(frozen=True)
class Evaluation:
    """A parameter set on one segment: mean Sharpe, worst drawdown, trades, per-bar returns (mean over symbols)."""

    sharpe: float
    max_drawdown: float
    trades: int
    returns: np.ndarray


@dataclass
class FoldResult:
    """One walk-forward fold: its trials, the best parameters, in-sample and out-of-sample evaluations."""

    fold: int
    in_sample: tuple[int, int]
    out_sample: tuple[int, int]
    trials: list[dict[str, Any]] = field(default_factory=list)
    best_params: dict[str, Any] = field(default_factory=dict)
    best_in: Evaluation | None = None
    best_out: Evaluation | None = None


def _strategy(kind: str, base: dict[str, Any], params: dict[str, Any], inst: Instrument) -> SignalStrategy:
    cfg = parse_strategy_config({"kind": kind, **base, **params})
    s = build_strategy(cfg, [inst])
    if not isinstance(s, SignalStrategy):
        raise ValueError(f"strategy {kind!r} is not a signal strategy; the engine cannot search it")
    return s


def evaluate(kind: str, base: dict[str, Any], params: dict[str, Any], series: Sequence[Series],
             segment: tuple[int, int], paper: PaperConfig, cash: float, ppy: float) -> Evaluation:
    """Run the parameter set on bars ``[segment)`` of every series (signals from the whole series)."""
    sharpes, dds, trades, rets = [], [], 0, []
    a, b = segment
    for s in series:
        strat = _strategy(kind, base, params, Instrument("research", s.symbol, 8, 8))
        w = max(0, a - strat.history_bars + 1)  # signals need only their lookback before the segment
        ent, ext, dist = (x[a - w:] for x in signals(strat, tuple(x[w:b] for x in s.arrays)))
        o, h, lo, c = (x[a:b] for x in s.arrays[:4])
        cfg = strat.cfg
        tr, eq = simulate(o, h, lo, c, ent, ext, dist, cash, strat.fraction, cfg.cash_reserve,
                          paper.taker_fee_bps, paper.maker_fee_bps, paper.slippage_bps,
                          cfg.stop_loss_pct or math.nan, cfg.take_profit_pct or math.nan, -1, -1, False)
        r = np.diff(np.concatenate([[cash], eq])) / np.concatenate([[cash], eq[:-1]])
        sd = r.std(ddof=1)
        sharpes.append(float(r.mean() / sd * math.sqrt(ppy)) if sd > 0 else 0.0)
        peak = np.maximum.accumulate(np.concatenate([[cash], eq]))
        dds.append(float(np.max(1 - np.concatenate([[cash], eq]) / peak)))
        trades += len(tr)
        rets.append(r)
    return Evaluation(float(np.mean(sharpes)), float(np.max(dds)), trades, np.mean(rets, axis=0))


def _sampler(method: str, space: dict[str, tuple[str, float, float, float]], seed: int) -> Any:
    import optuna

    if method == "grid":
        grid = {k: [int(x) if t == "int" else float(x) for x in np.arange(lo, hi + step / 2, step)]
                for k, (t, lo, hi, step) in space.items()}
        return optuna.samplers.GridSampler(grid, seed=seed)
    if method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if method == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if method == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    raise ValueError(f"method={method!r} unknown; expected one of {METHODS}")


def _suggest(trial: Any, space: dict[str, tuple[str, float, float, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, (t, lo, hi, step) in space.items():
        if t == "int":
            out[k] = trial.suggest_int(k, int(lo), int(hi), step=int(step) if step >= 1 else 1)
        else:
            out[k] = trial.suggest_float(k, lo, hi)
    return out


def _valid(kind: str, base: dict[str, Any], params: dict[str, Any]) -> bool:
    try:
        parse_strategy_config({"kind": kind, **base, **params})
    except Exception:  # an invalid combination (fast >= slow...) is pruned, not an error
        return False
    return True


def optimise_fold(kind: str, base: dict[str, Any], series: Sequence[Series], fold: int, in_sample: tuple[int, int],
                  out_sample: tuple[int, int] | None, method: str, trials: int, seed: int, paper: PaperConfig,
                  cash: float, ppy: float) -> FoldResult:
    """Optimise on ``in_sample``, evaluate the best on ``out_sample`` (a Dask task; pure and seeded)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = SPACES[kind]
    multi = method == "nsga2"
    study = optuna.create_study(directions=["maximize", "minimize"] if multi else ["maximize"],
                                sampler=_sampler(method, space, seed + fold))
    result = FoldResult(fold, in_sample, out_sample or (0, 0))

    def objective(trial: Any) -> Any:
        params = _suggest(trial, space)
        if not _valid(kind, base, params):
            raise optuna.TrialPruned(f"invalid parameters {params}")
        ev = evaluate(kind, base, params, series, in_sample, paper, cash, ppy)
        result.trials.append({"params": params, "sharpe": ev.sharpe, "max_drawdown": ev.max_drawdown,
                              "trades": ev.trades})
        return (ev.sharpe, ev.max_drawdown) if multi else ev.sharpe

    study.optimize(objective, n_trials=trials)
    done = [t for t in result.trials if math.isfinite(t["sharpe"])]
    if not done:
        raise ValueError(f"fold {fold}: no valid trial among {trials}")
    best = max(done, key=lambda t: t["sharpe"])  # NSGA-II: the Pareto front's best Sharpe is the overall best
    result.best_params = best["params"]
    result.best_in = evaluate(kind, base, best["params"], series, in_sample, paper, cash, ppy)
    if out_sample is not None:
        result.best_out = evaluate(kind, base, best["params"], series, out_sample, paper, cash, ppy)
    return result


@dataclass
class SearchResult:
    """Every fold, the chosen parameters (the last fold's best) and the overfitting figures."""

    kind: str
    method: str
    folds: list[FoldResult]
    chosen: dict[str, Any]
    walk_forward_sharpe: float
    walk_forward_returns: np.ndarray
    deflated: dict[str, float]
    pbo: float
    pbo_configs: int


def segments(n: int, folds: int) -> list[tuple[tuple[int, int], tuple[int, int] | None]]:
    """``(in_sample, out_sample)`` bar ranges: ``folds`` rolling pairs, or the whole range once for 0."""
    if folds <= 0:
        return [((0, n), None)]
    edges = np.linspace(0, n, folds + 2).astype(int)
    return [((int(edges[i]), int(edges[i + 1])), (int(edges[i + 1]), int(edges[i + 2]))) for i in range(folds)]


def search(kind: str, series: Sequence[Series], *, method: str = "tpe", trials: int = 100, walk_forward: int = 0,
           base: dict[str, Any] | None = None, paper: PaperConfig | None = None, cash: float = 10_000.0,
           ppy: float = 17_520.0, seed: int = 7, client: Any = None,
           progress: Callable[[int, int], None] | None = None) -> SearchResult:
    """Search ``kind``'s parameters over ``series``; folds on ``client`` (a Dask client) when given."""
    if kind not in SPACES:
        raise ValueError(f"strategy {kind!r} has no search space; expected one of {sorted(SPACES)}")
    if method not in METHODS:
        raise ValueError(f"method={method!r} unknown; expected one of {METHODS}")
    base, paper = base or {}, paper or PaperConfig()
    n = min(len(s.arrays[0]) for s in series)
    segs = segments(n, walk_forward)
    args = [(kind, base, series, i, ins, out, method, trials, seed, paper, cash, ppy) for i, (ins, out) in
            enumerate(segs)]
    folds: list[FoldResult] = []
    if client is None:
        for a in args:
            folds.append(optimise_fold(*a))
            if progress:
                progress(len(folds), len(args))
    else:
        from distributed import as_completed

        scattered = client.scatter(list(series), broadcast=True)
        futures = [client.submit(optimise_fold, *a[:2], scattered, *a[3:], pure=False) for a in args]
        for fut in as_completed(futures):
            folds.append(fut.result())
            if progress:
                progress(len(folds), len(args))
        folds.sort(key=lambda f: f.fold)
    last = folds[-1]
    outs = [f.best_out.returns for f in folds if f.best_out is not None]
    wf = np.concatenate(outs) if outs else (last.best_in.returns if last.best_in else np.array([]))
    sd = wf.std(ddof=1) if len(wf) > 1 else 0.0
    wf_sharpe = float(wf.mean() / sd * math.sqrt(ppy)) if sd > 0 else math.nan
    sharpes = np.array([t["sharpe"] for t in last.trials if math.isfinite(t["sharpe"])]) / math.sqrt(ppy)
    assert last.best_in is not None
    dsr = deflated_sharpe(last.best_in.returns, len(sharpes), float(sharpes.var(ddof=1)) if len(sharpes) > 1 else 0.0)
    distinct = {tuple(sorted(t["params"].items())): t["params"] for f in folds for t in f.trials}
    configs = list(distinct.values())[:200]
    matrix = np.column_stack([evaluate(kind, base, p, series, (0, n), paper, cash, ppy).returns for p in configs])
    pbo = pbo_cscv(matrix, n_blocks=10).pbo if matrix.shape[1] >= 2 else math.nan
    return SearchResult(kind, method, folds, last.best_params, wf_sharpe, wf, dsr, pbo, matrix.shape[1])
