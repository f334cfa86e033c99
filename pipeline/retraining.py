"""The retraining DAG's tasks: judge drift against the champion's training set, then retrain a challenger if due.

``drift_check`` compares the live gold rows of ``[start, end)`` with the reference, the point-in-time
training set the champion was trained on (reloaded from the lake with the symbols, range and as-of
cut its registry metadata records): PSI and KS of every feature the champion reads and of its
predictions (on the reference side only its held-out test segment, so in-sample confidence is not
mistaken for drift), and the decay of the live hit rate against the test segment's
(:func:`pipeline.drift.detect`). Retraining is due when the check finds drift, when there is no
champion, or on the weekly clock (:func:`pipeline.training.retrain_due`: the latest trained model is
``pipeline.retrain_every_days`` old). Too few live rows (``drift.min_live_rows``) is "not judged",
never drift. Everything is judged at the interval's end (logical time), against the registry as
it was before the interval's own challenger (trained at that end), so a re-run judges, trains and
gates the same way and registers nothing new; the report of every
run is written to ``<artifacts>/drift/<exchange>-<timeframe>/<interval tag>.json``, so a re-run
overwrites it. ``retrain_challenger`` trains on the rolling lookback and registers the challenger,
promoted only if the champion gate passes (:func:`pipeline.training.train_challenger`, the train
task's own code).

On the ``landed`` clock (``airflow.retrain_clock``, set by `cryptolake up`, whose replayed candles carry
historical bar times) a run's data interval is wall-clock time: :func:`landed_span` turns it into the
bar-time span of the market's candles landed in bronze during it (from the first one's open to the last
one's close), and that span is what is judged and trained up to. Landing times never change, so a re-run
judges the same span. The span is judged once gold holds at least ``drift.min_live_rows`` of its rows
(it waits for the streaming features a while); before that the run is "not judged", with no retrain
either (there is nothing to train on yet).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from cryptolake.errors import ConfigError
from cryptolake.logs import get_logger
from cryptolake.settings import DriftSettings, Settings
from cryptolake.types import TIMEFRAME_MS
from models.base import Model
from models.dataset import KEY_COLUMNS
from models.registry import RegistryEntry
from pipeline.drift import DriftReport, calibrate, detect, hit_rate
from pipeline.interval import Interval
from pipeline.results import finite
from pipeline.training import (
    before_end,
    current_champion,
    latest_trained,
    market_registry,
    retrain_due,
    train_challenger,
)

log = get_logger(__name__)

PREDICTION = "prediction"  # the champion's up-move probability, checked for drift like a feature
Verdict = Literal["drifted", "stable", "not_judged", "no_champion"]


@dataclass(frozen=True)
class DriftCheck:
    """The drift check of one interval: the verdict, whether to retrain and why, and every number behind it."""

    start: str
    end: str
    verdict: Verdict
    retrain: bool
    reason: str
    champion: str | None
    weekly_due: bool
    weekly_reason: str
    reference_rows: int = 0
    live_rows: int = 0
    drifted_columns: list[str] = field(default_factory=list)
    drift_reasons: list[str] = field(default_factory=list)
    columns: list[dict[str, Any]] = field(default_factory=list)
    reference_hit_rate: float | None = None
    live_hit_rate: float | None = None
    reference_table_versions: dict[str, int] = field(default_factory=dict)
    report_path: str = ""


@dataclass(frozen=True)
class RetrainResult:
    """A retraining run's challenger: registered always, promoted only by the champion gate."""

    challenger: str
    promoted: bool
    champion_before: str | None
    champion_after: str | None
    reason: str
    gate: str
    rows: int
    lookback_start: str
    trained_at: str
    oos_start: str


# --- pure: the comparison and the decision ------------------------------------------------------------------
def signals_of(probability: pd.Series | np.ndarray, threshold: float) -> np.ndarray:
    """+1 (up) where the probability reaches the threshold, -1 (down) below it, NaN where there is none."""
    p = np.asarray(probability, dtype=float)
    return np.where(np.isfinite(p), np.where(p >= threshold, 1.0, -1.0), np.nan)


def compare(reference: pd.DataFrame, live: pd.DataFrame, features: Sequence[str], threshold: float,
            settings: DriftSettings) -> DriftReport:
    """PSI/KS of ``features`` and of ``prediction``, and hit-rate decay, of ``live`` against ``reference``.

    Both frames hold the feature columns, ``prediction`` (NaN where the model gave none: the
    reference's rows outside its test segment, bars without a complete window) and
    ``next_log_return``; non-finite values are left out per column. The thresholds are calibrated
    on the reference (:func:`pipeline.drift.calibrate`) for a window of the live rows' size, its
    blocks taken in time order (all symbols of a span of bars together, as the live window holds).
    """
    if "ts" in reference:
        reference = reference.sort_values([c for c in ("ts", "symbol") if c in reference], kind="stable")
    columns = [*features, PREDICTION]
    ref_hr = hit_rate(signals_of(reference[PREDICTION], threshold), reference["next_log_return"].to_numpy(float))
    ref = {c: reference[c].to_numpy(float) for c in columns}
    cur = {c: live[c].to_numpy(float) for c in columns}
    windows = {c: int(np.isfinite(v).sum()) for c, v in cur.items()}
    return detect(ref, cur, settings, thresholds=calibrate(ref, windows, settings), reference_hit_rate=ref_hr,
                  live_signals=list(signals_of(live[PREDICTION], threshold)),
                  live_returns=list(live["next_log_return"].to_numpy(float)))


def decide(report: DriftReport | None, live_rows: int, champion: str | None, weekly: tuple[bool, str],
           settings: DriftSettings) -> tuple[Verdict, bool, str]:
    """The verdict, whether to retrain, and why: drift, no champion or the weekly clock; too few rows is not drift."""
    weekly_due, weekly_reason = weekly
    if champion is None:
        return "no_champion", True, f"no champion to judge drift against: retrain ({weekly_reason})"
    if report is None or live_rows < settings.min_live_rows:
        verdict: Verdict = "not_judged"
        why = f"not judged: {live_rows} live rows (< drift.min_live_rows {settings.min_live_rows})"
    elif report.drifted:
        return "drifted", True, "drifted: " + "; ".join(report.reasons)
    else:
        verdict, why = "stable", f"no drift in {len(report.columns)} columns"
    if weekly_due:
        return verdict, True, f"{why}; weekly retrain due: {weekly_reason}"
    return verdict, False, f"{why}; {weekly_reason}"


# --- the lake: reference and live frames ------------------------------------------------------------------------
def _bar(settings: Settings) -> timedelta:
    return timedelta(milliseconds=TIMEFRAME_MS[settings.market.timeframe])


def _with_predictions(model: Model, frame: pd.DataFrame, score_from: datetime) -> pd.DataFrame:
    """``frame``'s rows from ``score_from`` on, with the model's ``prediction`` (NaN without a complete window)."""
    out = frame.copy()
    out[PREDICTION] = np.nan
    if len(frame):
        predicted = model.predict(frame)
        predicted = predicted[predicted["ts"] >= pd.Timestamp(score_from)]
        scores = predicted[[*KEY_COLUMNS, "probability"]].rename(columns={"probability": PREDICTION})
        out = out.drop(columns=[PREDICTION]).merge(scores, on=list(KEY_COLUMNS), how="left")
    return out


def _reference(entry: RegistryEntry, model: Model, settings: Settings) -> tuple[pd.DataFrame, dict[str, int]]:
    """The champion's training set reloaded point in time, with its predictions on the held-out test segment."""
    from models.dataset import load_training_set

    meta = entry.metadata
    missing = [k for k in ("symbols", "data_start", "data_end", "data_as_of") if k not in meta]
    if missing:  # e.g. a PPO agent: its metadata names no point-in-time training set to compare with
        raise ConfigError(f"champion {entry.version} ({entry.kind}) records no training set {missing}: "
                          "drift cannot be judged against it")
    start, end, as_of = (datetime.fromisoformat(str(meta[k])) for k in ("data_start", "data_end", "data_as_of"))
    dataset = load_training_set(list(meta["symbols"]), start, end, as_of, settings,
                                exchanges=[settings.market.exchange])
    frame = dataset.frame
    context = entry.oos_start - 2 * model.window * _bar(settings)  # the test segment's first windows need history
    scored = _with_predictions(model, frame[frame["ts"] >= pd.Timestamp(context)], entry.oos_start)
    frame = frame.merge(scored[[*KEY_COLUMNS, PREDICTION]], on=list(KEY_COLUMNS), how="left")
    return frame, dict(dataset.table_versions)


def _live(interval: Interval, model: Model, settings: Settings) -> pd.DataFrame:
    """Gold rows of ``[start, end)`` knowable by ``end``, with the champion's predictions (history for windows)."""
    from models.dataset import load_training_set

    context = interval.start - 2 * model.window * _bar(settings)
    dataset = load_training_set(settings.market.symbols, context, interval.end, interval.end, settings,
                                exchanges=[settings.market.exchange])
    return _with_predictions(model, dataset.frame, interval.start)


def report_path(interval: Interval, settings: Settings) -> Path:
    """Where the drift report of ``interval`` is kept (one file per interval: a re-run replaces it)."""
    m = settings.market
    folder = settings.paths.artifacts_dir / "drift" / f"{m.exchange}-{m.timeframe}"
    return folder / f"{report_tag(interval, settings)}.json"


def report_tag(interval: Interval, settings: Settings) -> str:
    """The interval's tag (:attr:`Interval.tag`); to the minute on the landed clock, whose spans are bar spans."""
    if settings.airflow.retrain_clock == "landed":
        return f"{interval.start:%Y%m%d%H%M}-{interval.end:%Y%m%d%H%M}"
    return interval.tag


def _write_json(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(finite(record), fh, indent=2, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- the tasks ----------------------------------------------------------------------------------------------
def drift_check(interval: Interval, settings: Settings) -> DriftCheck:
    """Judge the interval's live data against the champion's training set; persist and return the verdict."""
    registry = market_registry(settings)
    # the registry before this interval's own retrain (a model trained at its end): a re-run judges the same
    champion = current_champion(registry, before_end(interval))
    weekly = retrain_due(latest_trained(registry, before_end(interval)), interval, settings)
    base: dict[str, Any] = {"start": interval.start.isoformat(), "end": interval.end.isoformat(),
                            "champion": champion.version if champion else None, "weekly_due": weekly[0],
                            "weekly_reason": weekly[1], "report_path": str(report_path(interval, settings))}
    extra: dict[str, Any] = {}
    report: DriftReport | None = None
    live_rows = 0
    if champion is not None:
        model = registry.load(champion.version)
        reference, versions = _reference(champion, model, settings)
        live = _live(interval, model, settings)
        live = live[live["ts"] >= pd.Timestamp(interval.start)]
        live_rows = len(live)
        extra = {"reference_rows": len(reference), "live_rows": live_rows, "reference_table_versions": versions}
        if live_rows >= settings.drift.min_live_rows:
            report = compare(reference, live, model.feature_columns, model.threshold, settings.drift)
            extra |= {"drifted_columns": [c.name for c in report.columns if c.drifted],
                      "drift_reasons": list(report.reasons), "columns": [asdict(c) for c in report.columns],
                      "reference_hit_rate": report.reference_hit_rate, "live_hit_rate": report.live_hit_rate}
    verdict, retrain, reason = decide(report, live_rows, base["champion"], weekly, settings.drift)
    check = DriftCheck(**base, **extra, verdict=verdict, retrain=retrain, reason=reason)
    _write_json(report_path(interval, settings), asdict(check))
    log.info("retraining.drift_check", extra={"verdict": verdict, "retrain": retrain, "reason": reason,
                                               "champion": check.champion, "live_rows": live_rows})
    return check


def retrain_challenger(interval: Interval, settings: Settings, reason: str) -> RetrainResult:
    """Train a challenger on the lookback ending at the interval's end; promoted only if the gate passes."""
    registry = market_registry(settings)
    before = current_champion(registry, before_end(interval))
    trained = train_challenger(interval, settings, registry)
    after = current_champion(registry, interval.end)
    result = RetrainResult(
        challenger=trained.entry.version, promoted=trained.entry.promoted,
        champion_before=before.version if before else None, champion_after=after.version if after else None,
        reason=reason, gate=trained.gate.reason, rows=trained.rows, lookback_start=trained.lookback_start.isoformat(),
        trained_at=trained.entry.trained_at.isoformat(), oos_start=trained.entry.oos_start.isoformat(),
    )
    path = report_path(interval, settings)
    _write_json(path.with_name(f"{report_tag(interval, settings)}.retrain.json"), asdict(result))
    log.info("retraining.retrained", extra={"challenger": result.challenger, "promoted": result.promoted,
                                             "gate": result.gate, "reason": reason})
    return result


# --- the landed clock (`cryptolake up`) ----------------------------------------------------------------------------
_LANDED_SPAN = """
SELECT epoch_ms(min(event_time)), epoch_ms(max(available_time)), count(*) FROM delta_scan('{path}')
WHERE landed_time >= ?::TIMESTAMPTZ AND landed_time < ?::TIMESTAMPTZ
  AND list_contains(?, key) AND json_extract_string(payload, '$.timeframe') = ?
"""


def landed_span(interval: Interval, settings: Settings, settle_s: float = 30.0) -> Interval | None:
    """The bar-time span of the market's candles landed in bronze during ``interval`` (wall clock), from the first
    one's open to the last one's close; None when none landed. Waits up to ``settle_s`` for a landing commit after
    the interval's end (a batch stamped before it may commit after it, :func:`pipeline.landing.settle`)."""
    from cryptolake import topics
    from cryptolake.duck import connect, delta_exists, scan_literal
    from cryptolake.tables import bronze_spec
    from pipeline.landing import settle

    path = bronze_spec(topics.MARKET_OHLCV).path(settings)
    if not delta_exists(path, settings):
        return None
    settle(path, interval.end, settings, settle_s)
    m = settings.market
    keys = [topics.market_key(m.exchange, s) for s in m.symbols]
    con = connect(settings, views=False)
    try:
        con.execute("SET TimeZone = 'UTC'")
        found = con.execute(_LANDED_SPAN.format(path=scan_literal(path)),
                            [interval.start.isoformat(), interval.end.isoformat(), keys, m.timeframe]).fetchone()
    finally:
        con.close()
    if not found or not found[2]:
        return None
    return Interval(pd.Timestamp(found[0], unit="ms", tz="UTC").to_pydatetime(),
                    pd.Timestamp(found[1], unit="ms", tz="UTC").to_pydatetime())


def gold_rows(span: Interval, settings: Settings) -> int:
    """Training rows (features with their labels) of ``span`` knowable at its end: what the span can be judged on
    (0 while the stream has not written gold yet)."""
    from cryptolake.duck import delta_exists
    from cryptolake.tables import GOLD_FEATURES, GOLD_LABELS
    from models.dataset import load_training_set

    if not all(delta_exists(t.path(settings), settings) for t in (GOLD_FEATURES, GOLD_LABELS)):
        return 0
    return len(load_training_set(settings.market.symbols, span.start, span.end, span.end, settings,
                                 exchanges=[settings.market.exchange]))


def judged_span(interval: Interval, settings: Settings, wait_s: float = 300.0) -> tuple[Interval | None, str]:
    """The bar-time interval a landed-clock run judges, once gold holds ``drift.min_live_rows`` of its rows (waited
    for up to ``wait_s``); None and why when no candle landed in ``interval`` or gold does not hold them yet."""
    import time

    m = settings.market
    span = landed_span(interval, settings)
    if span is None:
        return None, f"no {m.exchange} {m.timeframe} candle landed in [{interval.start}, {interval.end})"
    need = settings.drift.min_live_rows
    deadline = time.monotonic() + wait_s
    rows = gold_rows(span, settings)
    while rows < need and time.monotonic() < deadline:
        time.sleep(2.0)
        rows = gold_rows(span, settings)
    if rows < need:
        return None, (f"not judged: {rows} gold rows of the bars landed in [{interval.start}, {interval.end}) "
                      f"(bars {span.start} -> {span.end}; < drift.min_live_rows {need})")
    return span, f"bars {span.start.isoformat()} -> {span.end.isoformat()} landed in [{interval.start}, {interval.end})"


def _unjudged(interval: Interval, settings: Settings, reason: str) -> DriftCheck:
    """The check of a landed-clock interval with nothing to judge yet: written like any, no retrain."""
    champion = current_champion(market_registry(settings), before_end(interval))
    check = DriftCheck(start=interval.start.isoformat(), end=interval.end.isoformat(), verdict="not_judged",
                       retrain=False, reason=reason, champion=champion.version if champion else None,
                       weekly_due=False, weekly_reason="", report_path=str(report_path(interval, settings)))
    _write_json(report_path(interval, settings), asdict(check))
    log.info("retraining.not_judged", extra={"reason": reason})
    return check


def run_task(name: str, start: str, end: str, settings: Settings | None = None, **kwargs: Any) -> dict[str, Any]:
    """Run ``drift_check`` or ``retrain_challenger`` for ``[start, end)`` (on the landed clock: the bars landed in
    it); the result as a JSON-able record (XCom)."""
    from cryptolake.settings import get_settings

    settings = settings or get_settings()
    interval = Interval.parse(start, end)
    result: DriftCheck | RetrainResult
    if settings.airflow.retrain_clock == "landed":
        span, why = judged_span(interval, settings)
        if span is None:
            if name == "retrain":
                raise ConfigError(f"retrain of [{start}, {end}): {why}")
            return dict(finite(asdict(_unjudged(interval, settings, why))))
        log.info("retraining.landed_span", extra={"span": why})
        interval = span
    if name == "drift_check":
        result = drift_check(interval, settings)
    elif name == "retrain":
        result = retrain_challenger(interval, settings, str(kwargs["reason"]))
    else:
        raise ValueError(f"unknown retraining task {name!r}")
    return dict(finite(asdict(result)))
