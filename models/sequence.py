"""Sequence models (LSTM, GRU, Transformer, TCN): one wrapper around :mod:`models.nets` for every net.

``fit`` windows the training set per series, splits it in time (train / gap / valid / gap /
test; a walk-forward fold may be given instead), standardises with training statistics only,
trains with the shared loop (:mod:`models.training`) and reports test metrics next to the naive
baselines. The gap between segments is at least the window and at least the label horizon plus
the embargo, so no training label overlaps a validation or test bar. Same seed + same data give
the same weights, metrics and predictions. The model's ``kind`` is its net, so the registry
loads every net through this one class.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cryptolake.errors import ConfigError, DataValidationError
from cryptolake.logs import get_logger
from cryptolake.settings import PROJECT_ROOT
from cryptolake.tables import FEATURE_COLUMNS
from cryptolake.types import TIMEFRAME_MS
from models.baselines import segment_predictions
from models.calibration import reliability_curve
from models.dataset import KEY_COLUMNS, TrainingSet, validate_training_frame
from models.evaluate import Metrics
from models.impute import IMPUTED, impute_short_gaps
from models.nets import SequenceClassifier, build_net
from models.splits import Fold, time_split
from models.targets import Target, make_labels
from models.training import LoopConfig, deterministic, probabilities, train_net
from models.walkforward import segment_rows
from models.windows import Standardiser, gather, window_ends

log = get_logger(__name__)

WEIGHTS_FILE = "model.pt"
METADATA_FILE = "model.json"


NetKind = Literal["lstm", "gru", "transformer", "tcn"]
NET_KINDS: tuple[str, ...] = ("lstm", "gru", "transformer", "tcn")


class SequenceConfig(BaseModel):
    """Everything that determines a trained sequence model (hashed into the model version)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    net: NetKind = "lstm"
    feature_columns: tuple[str, ...] = FEATURE_COLUMNS
    window: int = Field(default=32, ge=2, le=512, description="Bars per input window")
    hidden_size: int = Field(default=32, ge=1, le=1024)
    num_layers: int = Field(default=1, ge=1, le=4)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    heads: int = Field(default=4, ge=1, description="Attention heads (transformer)")
    kernel_size: int = Field(default=3, ge=2, description="Convolution width (tcn)")
    target: Target = Field(default="direction", description="direction (next bar) or forward_return (k bars)")
    horizon: int = Field(default=1, ge=1, le=256, description="Label horizon in bars (forward_return)")
    cost: float = Field(default=0.0, ge=0, description="Round-trip cost (log return) the forward return must beat")
    embargo_bars: int = Field(default=0, ge=0, description="Extra bars dropped after the purge between segments")
    impute_max_gap: int = Field(default=3, ge=0, le=16, description="Holes of up to this many bars are "
                                "forward-filled (flagged, never ending a window); 0 = no imputation")
    learning_rate: float = Field(default=2e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    batch_size: int = Field(default=512, ge=1)
    max_epochs: int = Field(default=10, ge=1)
    patience: int = Field(default=3, ge=1, description="Epochs without validation gain before stopping")
    samples_per_epoch: int = Field(default=32_768, ge=0, description="Windows drawn per epoch; 0 = all")
    valid_fraction: float = Field(default=0.15, gt=0, lt=1)
    test_fraction: float = Field(default=0.15, gt=0, lt=1)
    gap_bars: int | None = Field(default=None, description="Bars between segments; default = window")
    threshold: float = Field(default=0.5, gt=0, lt=1, description="direction = 1 if probability >= threshold")
    seed: int = 7
    # Fixed so results are reproducible (float sums depend on the split). 1, not 2: on the shared
    # 2-core machine two OpenMP threads spin against other processes and a training batch took
    # 1.4 s instead of 0.06 s (see docs/benchmarks.md); on an idle box 2 threads gain little.
    num_threads: int = Field(default=1, ge=1, description="torch intra-op threads (fixed for determinism)")

    @model_validator(mode="after")
    def _check(self) -> SequenceConfig:
        if self.gap_bars is not None and self.gap_bars < max(self.window, self.horizon + self.embargo_bars):
            raise ValueError(f"gap_bars={self.gap_bars} must be >= window={self.window} and >= horizon + embargo "
                             f"= {self.horizon + self.embargo_bars} to avoid leakage")
        if self.target == "direction" and self.horizon != 1:
            raise ValueError(f"horizon={self.horizon}: the direction target is the next bar's (use forward_return)")
        if not self.feature_columns:
            raise ValueError("feature_columns must not be empty")
        if self.valid_fraction + self.test_fraction >= 1:
            total = self.valid_fraction + self.test_fraction
            raise ValueError(f"valid_fraction + test_fraction = {total} must be < 1")
        return self

    @property
    def effective_gap_bars(self) -> int:
        """Bars between segments: the window, or the purge (horizon) plus the embargo if longer."""
        return self.gap_bars if self.gap_bars is not None else max(self.window, self.horizon + self.embargo_bars)

    def net_params(self) -> dict[str, Any]:
        """The keyword arguments of :func:`models.nets.build_net` for this config."""
        params: dict[str, Any] = {"hidden_size": self.hidden_size, "num_layers": self.num_layers,
                                  "dropout": self.dropout}
        if self.net == "transformer":
            params["heads"] = self.heads
        if self.net == "tcn":
            params["kernel_size"] = self.kernel_size
        return params

    def loop(self) -> LoopConfig:
        return LoopConfig(learning_rate=self.learning_rate, weight_decay=self.weight_decay,
                          batch_size=self.batch_size, max_epochs=self.max_epochs, patience=self.patience,
                          samples_per_epoch=self.samples_per_epoch, seed=self.seed)

    def config_hash(self) -> str:
        """sha256 of the canonical JSON of the config."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class ModelMetadata(BaseModel):
    """What is saved as JSON beside the weights."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_version: str
    net: str
    config: dict[str, Any]
    config_hash: str
    feature_columns: tuple[str, ...]
    window: int
    seed: int
    threshold: float
    standardiser_mean: tuple[float, ...]
    standardiser_std: tuple[float, ...]
    table_versions: dict[str, int]
    symbols: tuple[str, ...]
    data_start: datetime
    data_end: datetime
    data_as_of: datetime
    segments: dict[str, tuple[datetime, datetime]]
    samples: dict[str, int]
    metrics: dict[str, dict[str, float | int]]
    calibration: list[dict[str, float | int | None]]
    epochs_trained: int
    best_epoch: int
    train_seconds: float
    code_version: str
    trained_at: datetime
    code_hash: str = ""
    fold_metrics: list[dict[str, Any]] = Field(default_factory=list)
    feature_selection: dict[str, Any] = Field(default_factory=dict)
    imputation: dict[str, int] = Field(default_factory=dict)


@dataclass(frozen=True)
class FitReport:
    """The outcome of :meth:`LstmModel.fit` (also recorded in the metadata)."""

    metrics: dict[str, Metrics]
    calibration: pd.DataFrame
    fold: Fold
    samples: dict[str, int]
    epochs_trained: int
    best_epoch: int
    history: list[dict[str, float]]
    train_seconds: float
    predictions: pd.DataFrame  # valid and test rows: keys, segment, label, next_log_return, one column per model


def code_version(root: Path = PROJECT_ROOT) -> str:
    """The git commit of the code (``+dirty`` if the tree has changes), or ``unknown`` outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}+dirty" if dirty else commit


def code_hash(root: Path = PROJECT_ROOT / "models") -> str:
    """sha256 over the source of the models package (changes with any model code, committed or not)."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _bar_length(frame: pd.DataFrame) -> timedelta:
    timeframes = sorted(set(frame["timeframe"]))
    unknown = [t for t in timeframes if t not in TIMEFRAME_MS]
    if unknown:
        raise DataValidationError("timeframe", unknown[0], f"unknown; expected one of {sorted(TIMEFRAME_MS)}")
    return timedelta(milliseconds=max(TIMEFRAME_MS[t] for t in timeframes))


class SequenceModel:
    """A sequence net's up-move classifier (the config's target), implementing the Model interface."""

    def __init__(self, config: SequenceConfig | None = None) -> None:
        self.config = config or SequenceConfig()
        self.net: SequenceClassifier | None = None
        self.standardiser: Standardiser | None = None
        self.metadata: ModelMetadata | None = None

    # --- Model interface ---------------------------------------------------------------
    @property
    def kind(self) -> str:
        """The net (``lstm``, ``gru``, ``transformer``, ``tcn``): the registry's key to this class."""
        return self.config.net

    @property
    def model_version(self) -> str:
        return self._fitted_metadata().model_version

    @property
    def threshold(self) -> float:
        return self.config.threshold

    @property
    def feature_columns(self) -> tuple[str, ...]:
        return self.config.feature_columns

    @property
    def window(self) -> int:
        return self.config.window

    @property
    def oos_start(self) -> datetime:
        return self._fitted_metadata().segments["test"][0]

    @property
    def trained_at(self) -> datetime:
        return self._fitted_metadata().trained_at

    def describe(self) -> dict[str, Any]:
        return self._fitted_metadata().model_dump(mode="json")

    def fit(self, dataset: TrainingSet, trained_at: datetime | None = None, fold: Fold | None = None,
            on_epoch: Any = None) -> FitReport:
        """Train on ``dataset`` (on ``fold``'s segments if given, else one time split).

        ``trained_at`` defaults to the dataset's as-of cut (logical time). A given fold's gaps
        must be at least the config's gap (window, and horizon + embargo).
        """
        cfg = self.config
        trained_at = trained_at or dataset.as_of
        if trained_at.tzinfo is None:
            raise DataValidationError("trained_at", trained_at, "must be a UTC-aware datetime")
        features = list(cfg.feature_columns)
        validate_training_frame(dataset.frame, features)
        started = time.perf_counter()
        imputation = impute_short_gaps(dataset.frame, features, cfg.impute_max_gap)
        frame, imputed = imputation.frame, imputation.imputed
        ts = pd.to_datetime(frame["ts"], utc=True)
        values = frame[features].to_numpy(dtype=np.float64)
        labels = make_labels(frame, cfg.target, cfg.horizon, cfg.cost)
        ends = window_ends(frame, features, cfg.window)
        ends = ends[np.isfinite(labels[ends]) & ~imputed[ends]]
        bar = _bar_length(frame)
        gap = bar * cfg.effective_gap_bars
        if fold is None:
            fold = time_split(ts, valid_fraction=cfg.valid_fraction, test_fraction=cfg.test_fraction, gap=gap, bar=bar)
        elif fold.gap < gap:
            raise DataValidationError("fold.gap", fold.gap, f"must be >= {gap} (window, horizon + embargo)")
        split = segment_rows(fold, ts, ends, cfg.window, cfg.horizon, bar)
        samples = {name: len(idx) for name, idx in split.items()}
        for name, n in samples.items():
            if n == 0:
                raise DataValidationError(f"{name}_windows", 0, f"no complete {cfg.window}-bar windows in {name}")
        train_rows = fold.train.contains(ts) & np.isfinite(values).all(axis=1) & ~imputed
        self.standardiser = Standardiser.fit(values[train_rows])
        x_all = self.standardiser.transform(values)
        log.debug("net.fit.start", extra={"net": cfg.net, "samples": samples, "config_hash": cfg.config_hash()[:12]})

        def batch(rows: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(gather(x_all, rows, cfg.window))

        with deterministic(cfg.seed, cfg.num_threads):
            net = build_net(cfg.net, len(features), **cfg.net_params())
            history, best_epoch = train_net(net, batch, labels, split["train"], split["valid"], cfg.loop(), on_epoch)
            self.net = net
            scored = {name: probabilities(net, batch, split[name]).astype(np.float64) for name in ("valid", "test")}
        train_seconds = time.perf_counter() - started

        predictions, metrics = segment_predictions(frame, labels, split, x_all, scored, cfg.net, cfg.threshold,
                                                   cfg.seed)
        test = predictions[predictions["segment"] == "test"]
        calibration = reliability_curve(test["label"].to_numpy(), test[cfg.net].to_numpy())
        version_basis = json.dumps(
            {"config": cfg.config_hash(), "versions": dict(sorted(dataset.table_versions.items())),
             "symbols": list(dataset.symbols), "start": dataset.start.isoformat(),
             "end": dataset.end.isoformat(), "as_of": dataset.as_of.isoformat(),
             "fold": [s.start.isoformat() for s in fold.segments()] + [fold.test.end.isoformat()]},
            sort_keys=True,
        )
        self.metadata = ModelMetadata(
            model_version=f"{cfg.net}-{hashlib.sha256(version_basis.encode()).hexdigest()[:12]}",
            net=cfg.net, config=cfg.model_dump(mode="json"), config_hash=cfg.config_hash(),
            feature_columns=tuple(features), window=cfg.window, seed=cfg.seed, threshold=cfg.threshold,
            standardiser_mean=self.standardiser.mean, standardiser_std=self.standardiser.std,
            table_versions=dict(dataset.table_versions), symbols=dataset.symbols,
            data_start=dataset.start, data_end=dataset.end, data_as_of=dataset.as_of,
            segments={s.name: (s.start.to_pydatetime(), s.end.to_pydatetime()) for s in fold.segments()},
            samples=samples, metrics={name: m.as_dict() for name, m in metrics.items()},
            calibration=[
                {str(k): (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
                for row in calibration.to_dict(orient="records")
            ],
            epochs_trained=len(history), best_epoch=best_epoch, train_seconds=round(train_seconds, 3),
            code_version=code_version(), trained_at=trained_at, code_hash=code_hash(),
            feature_selection=dict(dataset.extra.get("feature_selection", {})),
            imputation=imputation.summary(),
        )
        log.debug("net.fit.done", extra={"model_version": self.metadata.model_version,
                                        "seconds": round(train_seconds, 2), "best_epoch": best_epoch})
        return FitReport(
            metrics=metrics, calibration=calibration, fold=fold, samples=samples, epochs_trained=len(history),
            best_epoch=best_epoch, history=history, train_seconds=train_seconds, predictions=predictions,
        )

    def with_fold_metrics(self, fold_metrics: list[dict[str, Any]]) -> None:
        """Record the walk-forward fold metrics in the metadata (saved and registered with the model)."""
        self.metadata = self._fitted_metadata().model_copy(update={"fold_metrics": list(fold_metrics)})

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Up-move probability for every bar of ``frame`` that ends a complete window.

        Returns the key columns (exchange, symbol, timeframe, ts), ``probability`` and
        ``imputed_bars`` (filled bars inside the window), sorted by series and time. Short holes are
        filled as in training; a filled bar is never scored. Labels are not needed.
        """
        net, standardiser = self._fitted()
        cfg = self.config
        features = list(cfg.feature_columns)
        missing = [c for c in (*KEY_COLUMNS, *features) if c not in frame.columns]
        if missing:
            raise DataValidationError("frame", missing, "missing columns needed to predict")
        ordered = impute_short_gaps(frame, features, cfg.impute_max_gap).frame
        imputed = ordered[IMPUTED].to_numpy(dtype=bool)
        ends = window_ends(ordered, features, cfg.window)
        ends = ends[~imputed[ends]]
        x_all = standardiser.transform(ordered[features].to_numpy(dtype=np.float64))
        with deterministic(cfg.seed, cfg.num_threads):
            probability = probabilities(net, lambda rows: torch.from_numpy(gather(x_all, rows, cfg.window)), ends)
        out = ordered.loc[ends, list(KEY_COLUMNS)].reset_index(drop=True)
        out["ts"] = pd.to_datetime(out["ts"], utc=True)
        out["probability"] = probability.astype(np.float64)
        out["imputed_bars"] = gather(imputed[:, None], ends, cfg.window).sum(axis=(1, 2)).astype(np.int64)
        return out

    def save(self, path: str | Path) -> Path:
        """Write ``model.pt`` (weights) and ``model.json`` (metadata) into the folder ``path``."""
        net, _ = self._fitted()
        meta = self._fitted_metadata()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(net.state_dict(), folder / WEIGHTS_FILE)
        (folder / METADATA_FILE).write_text(meta.model_dump_json(indent=2))
        log.debug("net.saved", extra={"path": str(folder), "model_version": meta.model_version})
        return folder

    @classmethod
    def load(cls, path: str | Path) -> SequenceModel:
        """Load a model saved by :meth:`save`."""
        folder = Path(path)
        meta_path, weights_path = folder / METADATA_FILE, folder / WEIGHTS_FILE
        for required in (meta_path, weights_path):
            if not required.exists():
                raise ConfigError(f"model folder {folder} lacks {required.name}")
        meta = ModelMetadata.model_validate_json(meta_path.read_text())
        # A model saved before imputation existed was trained without it: it predicts without it.
        model = cls(SequenceConfig.model_validate({"impute_max_gap": 0, **meta.config}))
        net = build_net(meta.net, len(meta.feature_columns), **model.config.net_params())
        net.load_state_dict(torch.load(weights_path, weights_only=True))
        net.eval()
        model.net = net
        model.standardiser = Standardiser(mean=meta.standardiser_mean, std=meta.standardiser_std)
        model.metadata = meta
        return model

    # --- internals ---------------------------------------------------------------------
    def _fitted(self) -> tuple[SequenceClassifier, Standardiser]:
        if self.net is None or self.standardiser is None:
            raise ConfigError("model is not fitted: call fit() or load() first")
        return self.net, self.standardiser

    def _fitted_metadata(self) -> ModelMetadata:
        if self.metadata is None:
            raise ConfigError("model is not fitted: call fit() or load() first")
        return self.metadata
