"""Run the main job's market tasks over one interval with the environment's settings; dump the rows.

``python -m tests.infra.pipeline_slice START END OUT``: ingest -> land -> silver -> gold -> train ->
score (the tasks of ``pipeline.market``, as the DAG calls them), then silver.bars, gold.features and
gold.signals of the configured exchange, read back through DuckDB, as parquet files in OUT, and
the task results as OUT/results.json. Whether it runs in one process (local Spark, one broker, a
local lake) or on the cluster (spark://, three brokers, s3a://) is the environment's business only.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

TABLES = {"silver_bars": "open_time", "gold_features": "ts", "gold_signals": "bar_time"}


def main(start: str, end: str, out: Path) -> None:
    from cryptolake import duck
    from cryptolake.settings import get_settings
    from pipeline import market
    from pipeline.interval import Interval
    from pipeline.results import as_record
    from spark_jobs.session import get_spark, stop_spark

    settings = get_settings()
    iv = Interval.parse(start, end)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, object] = {"master": settings.spark.master, "lake": settings.paths.lake(), "seconds": {}}
    t_all = time.monotonic()
    t0 = time.monotonic()
    spark = get_spark(settings)
    results["seconds"]["session"] = round(time.monotonic() - t0, 1)  # type: ignore[index]
    upstream: dict[str, object] = {}
    for name in ("ingest", "land", "silver", "gold", "train", "score"):
        t0 = time.monotonic()
        kwargs = {"model": upstream["train"]} if name == "score" else {}
        upstream[name] = market.TASKS[name](iv, settings, **kwargs)
        results[name] = as_record(upstream[name])
        results["seconds"][name] = round(time.monotonic() - t0, 1)  # type: ignore[index]
    # executors that ran the tasks (the driver's own entry excluded; local mode has none)
    results["executors"] = int(spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size()) - 1
    stop_spark()
    con = duck.connect(settings)
    try:
        for view, order in TABLES.items():
            frame = con.execute(f"SELECT * FROM {view} WHERE exchange = ? ORDER BY symbol, {order}",
                                [settings.market.exchange]).df()
            frame.to_parquet(out / f"{view}.parquet")
            results[f"rows_{view}"] = len(frame)
    finally:
        con.close()
    results["seconds"]["total"] = round(time.monotonic() - t_all, 1)  # type: ignore[index]
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
