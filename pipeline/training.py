"""The train task's decision: retrain on a rolling lookback, or reuse the market's champion.

A run for the interval ``[start, end)`` may use only what was knowable by ``end``. When training is
due (no champion trained by ``end``, or the champion is ``retrain_every_days`` old), the LSTM is
trained on the point-in-time training set of ``[end - train_lookback_days, end)`` as of ``end``,
registered and promoted; otherwise the champion is reused. Either way the model scores only bars
from its out-of-sample start (its held-out test segment) on, so no bar is scored by a model that
saw its label. Each market (exchange and timeframe) has its own registry.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from cryptolake.errors import ModelNotFoundError
from cryptolake.logs import get_logger
from cryptolake.settings import Settings
from models.registry import ModelRegistry, RegistryEntry
from pipeline.interval import Interval
from pipeline.results import TrainResult, finite

log = get_logger(__name__)


def market_registry(settings: Settings) -> ModelRegistry:
    """The registry of the configured market's models (one per exchange and timeframe)."""
    m = settings.market
    return ModelRegistry(settings.paths.artifacts_dir / "models" / f"{m.exchange}-{m.timeframe}")


def retrain_due(champion: RegistryEntry | None, interval: Interval, settings: Settings) -> tuple[bool, str]:
    """Whether the run for ``interval`` trains a new model, and why."""
    if champion is None:
        return True, f"no champion trained by {interval.end.isoformat()}"
    every = settings.pipeline.retrain_every_days
    age = interval.end - champion.trained_at
    if every == 0 or age >= timedelta(days=every):
        return True, f"champion {champion.version} is {age} old (retrain every {every} days)"
    return False, f"champion {champion.version} is {age} old (< {every} days): reused"


def _result(entry: RegistryEntry, *, retrained: bool, reason: str, lookback_start: datetime, rows: int) -> TrainResult:
    meta: dict[str, Any] = entry.metadata
    return TrainResult(
        model_version=entry.version, retrained=retrained, reason=reason, trained_at=entry.trained_at.isoformat(),
        oos_start=entry.oos_start.isoformat(), lookback_start=lookback_start.isoformat(), rows=rows,
        samples=dict(meta.get("samples", {})), segments={k: list(v) for k, v in meta.get("segments", {}).items()},
        metrics=finite(dict(meta.get("metrics", {}))), calibration=finite(list(meta.get("calibration", []))),
        table_versions=dict(meta.get("table_versions", {})),
    )


def train_or_reuse(interval: Interval, settings: Settings) -> TrainResult:
    """Train on the rolling lookback ending at the interval's end, or reuse the champion (see module)."""
    from models.dataset import load_training_set
    from models.lstm import LstmConfig, LstmModel

    registry = market_registry(settings)
    try:
        champion: RegistryEntry | None = registry.champion(as_of=interval.end)
    except ModelNotFoundError:
        champion = None
    due, reason = retrain_due(champion, interval, settings)
    lookback_start = interval.end - timedelta(days=settings.pipeline.train_lookback_days)
    if not due and champion is not None:
        log.info("train.reuse", extra={"model_version": champion.version, "reason": reason})
        return _result(champion, retrained=False, reason=reason, lookback_start=lookback_start, rows=0)
    dataset = load_training_set(settings.market.symbols, lookback_start, interval.end, interval.end, settings,
                                exchanges=[settings.market.exchange])
    model = LstmModel(LstmConfig(seed=settings.seed))
    model.fit(dataset, trained_at=interval.end)
    entry = registry.register(model, promote=True)
    log.info("train.trained", extra={"model_version": entry.version, "reason": reason, "rows": len(dataset)})
    return _result(entry, retrained=True, reason=reason, lookback_start=lookback_start, rows=len(dataset))
