"""Run the main job's market tasks over one interval with given settings; dump the rows.

:func:`run` calls ingest -> land -> silver -> gold -> train -> score (the tasks of ``pipeline.market``,
as the DAG calls them) with ``settings``, then reads silver.bars, gold.features and gold.signals of the
configured exchange back through DuckDB into parquet files in ``out``, and the task results (with
each task's wall and CPU seconds) into ``out/results.json``. It uses the process's SparkSession if
one is active (a test suite's), else starts one from ``settings``.

``python -m tests.infra.pipeline_slice START END OUT`` runs it in a fresh process whose settings come
from the environment only: whether that is one process (local Spark, one broker, a lake on disk) or
the cluster (spark://, three brokers, s3a://) is the environment's business.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from cryptolake.settings import Settings

TABLES = {"silver_bars": "open_time", "gold_features": "ts", "gold_signals": "bar_time"}
STEPS = ("ingest", "land", "silver", "gold", "train", "score")


def run(settings: Settings, start: str, end: str, out: Path) -> dict[str, Any]:
    """The tasks over ``[start, end)``, this exchange's rows as parquet in ``out``; returns the results."""
    from cryptolake import duck
    from pipeline import market
    from pipeline.interval import Interval, process_tree_cpu_seconds
    from pipeline.results import as_record
    from spark_jobs.session import get_spark

    iv = Interval.parse(start, end)
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    cpu: dict[str, float] = {}
    results: dict[str, Any] = {"master": settings.spark.master, "lake": settings.paths.lake(),
                               "seconds": seconds, "cpu_seconds": cpu}
    t_all = time.monotonic()
    t0, c0 = time.monotonic(), process_tree_cpu_seconds()
    spark = get_spark(settings)
    seconds["session"], cpu["session"] = round(time.monotonic() - t0, 1), round(process_tree_cpu_seconds() - c0, 1)
    upstream: dict[str, Any] = {}
    for name in STEPS:
        t0, c0 = time.monotonic(), process_tree_cpu_seconds()
        kwargs = {"model": upstream["train"]} if name == "score" else {}
        upstream[name] = market.TASKS[name](iv, settings, **kwargs)
        results[name] = as_record(upstream[name])
        seconds[name], cpu[name] = round(time.monotonic() - t0, 1), round(process_tree_cpu_seconds() - c0, 1)
    # executors that ran the tasks (the driver's own entry excluded; local mode has none)
    results["executors"] = int(spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size()) - 1
    t0 = time.monotonic()
    con = duck.connect(settings)
    try:
        for view, order in TABLES.items():
            frame = con.execute(f"SELECT * FROM {view} WHERE exchange = ? ORDER BY symbol, {order}",
                                [settings.market.exchange]).df()
            frame.to_parquet(out / f"{view}.parquet")
            results[f"rows_{view}"] = len(frame)
    finally:
        con.close()
    seconds["read_back"] = round(time.monotonic() - t0, 1)
    seconds["total"] = round(time.monotonic() - t_all, 1)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    return results


def main(start: str, end: str, out: Path) -> None:
    """One process configured by its environment: run the slice, then stop the session it started."""
    from cryptolake.settings import get_settings
    from spark_jobs.session import stop_spark

    try:
        run(get_settings(), start, end, out)
    finally:
        stop_spark()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
