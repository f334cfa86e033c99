"""``cryptolake optimize`` over the lake: a parameter search of one strategy, its study and a tearsheet.

Bars come from silver (``trading_bars.sql``); bars that break the candle rule are dropped (counted)
because the vectorised engine, like the node, never trades them. The search (:mod:`research.search`)
runs its walk-forward folds on Dask (:func:`cryptolake.compute.dask_client`); the trials are written to
an Optuna study (SQLite, one study per fold) and the chosen parameters' walk-forward out-of-sample
equity goes into a tearsheet with the deflated Sharpe ratio and the PBO.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cryptolake.bars import check_candle
from cryptolake.errors import DataValidationError
from cryptolake.settings import Settings
from pipeline.backtest import _FAR_FUTURE, _FAR_PAST, trading_bars
from research.search import SPACES, SearchResult, Series, search
from research.tearsheet import write_tearsheet
from research.vector import bar_columns
from trader.config import TraderConfig
from trader.metrics import periods_per_year


def valid_series(bars: pd.DataFrame, symbols: tuple[str, ...]) -> tuple[list[Series], int, dict[str, pd.Series]]:
    """Per symbol, the valid bars as engine arrays; the count of dropped invalid bars; open times."""
    out, dropped, times = [], 0, {}
    for sym in symbols:
        df = bars[bars.symbol == sym]
        ok = []
        for o, h, lo, c, v in df[["open", "high", "low", "close", "volume"]].itertuples(index=False):
            try:
                check_candle(o, h, lo, c, v)
                ok.append(True)
            except (DataValidationError, ValueError):
                ok.append(False)
        good = df[np.array(ok, dtype=bool)] if len(df) else df
        dropped += len(df) - len(good)
        if good.empty:
            raise DataValidationError("symbols", sym, "no valid bars in silver.bars: run `make main` first")
        out.append(Series(sym, bar_columns(good)))
        times[sym] = pd.to_datetime(good.open_time, utc=True).reset_index(drop=True)
    return out, dropped, times


@dataclass(frozen=True)
class OptimizeRun:
    """A finished search and where its study, summary and tearsheet are."""

    result: SearchResult
    study_path: Path
    summary_path: Path
    tearsheet: Path
    png: Path
    dropped_bars: int


def _write_study(path: Path, run: SearchResult) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path.unlink(missing_ok=True)
    storage = f"sqlite:///{path}"
    space = SPACES[run.kind]
    dists: dict[str, Any] = {
        k: optuna.distributions.IntDistribution(int(lo), int(hi), step=int(step)) if t == "int"
        else optuna.distributions.FloatDistribution(lo, hi) for k, (t, lo, hi, step) in space.items()}
    for f in run.folds:
        study = optuna.create_study(storage=storage, study_name=f"{run.kind}-{run.method}-fold{f.fold}",
                                    direction="maximize")
        study.set_user_attr("in_sample", list(f.in_sample))
        study.set_user_attr("out_sample", list(f.out_sample))
        study.add_trials([optuna.trial.create_trial(
            params=t["params"], distributions={k: dists[k] for k in t["params"]}, value=t["sharpe"],
            user_attrs={"max_drawdown": t["max_drawdown"], "trades": t["trades"]}) for t in f.trials
            if math.isfinite(t["sharpe"])])


def run_lake_optimize(config: TraderConfig, kind: str, *, method: str, trials: int, walk_forward: int,
                      settings: Settings, seed: int = 7, progress: Callable[[int, int], None] | None = None,
                      use_dask: bool = True) -> OptimizeRun:
    """Search ``kind`` over the lake's bars of ``config``'s symbols; write the study and the tearsheet."""
    from cryptolake.compute import dask_client

    bars = trading_bars(config, _FAR_PAST, _FAR_FUTURE, settings)
    series, dropped, times = valid_series(bars, config.symbols)
    ppy = periods_per_year(config.timeframe)
    kwargs: dict[str, Any] = {"method": method, "trials": trials, "walk_forward": walk_forward,
                              "paper": config.paper, "cash": config.initial_cash, "ppy": ppy, "seed": seed,
                              "progress": progress}
    if use_dask:
        with dask_client(settings.dask) as client:
            result = search(kind, series, client=client, **kwargs)
    else:
        result = search(kind, series, **kwargs)
    name = f"{kind}-{method}-{trials}x{walk_forward}-{'+'.join(s.replace('/', '') for s in config.symbols)}"
    folder = settings.paths.artifacts_dir / "studies" / name
    folder.mkdir(parents=True, exist_ok=True)
    study_path = folder / "study.db"
    _write_study(study_path, result)
    n = min(len(s.arrays[0]) for s in series)
    start = result.folds[0].out_sample[0] if walk_forward > 0 else 0
    index = times[config.symbols[0]].iloc[start:n]
    equity = pd.Series(config.initial_cash * np.cumprod(1 + result.walk_forward_returns), index=index.to_numpy())
    closes = np.mean([s.arrays[3][start:n] / s.arrays[3][start] for s in series], axis=0)
    hold = pd.Series(config.initial_cash * closes, index=equity.index)
    metrics = {"walk_forward_oos_sharpe": result.walk_forward_sharpe,
               "oos_total_return": float(equity.iloc[-1] / config.initial_cash - 1),
               "buy_and_hold_return": float(closes[-1] - 1),
               "deflated_sharpe": result.deflated["dsr"], "probabilistic_sharpe": result.deflated["psr"],
               "expected_max_sharpe_per_bar": result.deflated["sr0"], "pbo": result.pbo,
               "pbo_configs": result.pbo_configs, "trials_per_fold": trials, "folds": len(result.folds),
               "invalid_bars_dropped": dropped, "chosen": json.dumps(result.chosen)}
    folds = pd.DataFrame([{"fold": f.fold, "in_sample": f"{f.in_sample[0]}-{f.in_sample[1]}",
                           "out_sample": f"{f.out_sample[0]}-{f.out_sample[1]}", "params": json.dumps(f.best_params),
                           "is_sharpe": f.best_in.sharpe if f.best_in else math.nan,
                           "oos_sharpe": f.best_out.sharpe if f.best_out else math.nan,
                           "oos_max_drawdown": f.best_out.max_drawdown if f.best_out else math.nan,
                           "oos_trades": f.best_out.trades if f.best_out else 0} for f in result.folds])
    html, png = write_tearsheet(
        folder / "tearsheet.html", title=f"cryptolake optimize: {kind} ({method}, {trials} trials, "
        f"{walk_forward} folds) on {', '.join(config.symbols)}", equity=equity, benchmark=hold, metrics=metrics,
        tables={"Walk-forward folds": folds}, ppy=ppy,
        notes=("Equity: the out-of-sample segments of the walk-forward, each traded with the parameters chosen "
               "on the segment before it (mean of the symbols' accounts).",
               "PBO near 0: the in-sample winner also wins out of sample; 0.5: no better than chance; "
               "deflated Sharpe: probability the chosen Sharpe beats the best of as many unskilled trials."))
    summary = folder / "summary.json"
    summary.write_text(json.dumps({**metrics, "chosen": result.chosen, "folds": folds.to_dict(orient="records")},
                                  indent=2, default=str))
    return OptimizeRun(result, study_path, summary, html, png, dropped)
