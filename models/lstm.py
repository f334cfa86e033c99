"""LSTM direction model: the training wrapper around :class:`models.nets.LSTMClassifier`.

``fit`` windows the training set per series, splits it in time (train / gap / valid / gap /
test), standardises with training statistics only, trains with early stopping on validation
loss and reports test metrics next to the naive baselines. Same seed + same data give the
same weights, metrics and predictions.
"""

from __future__ import annotations

import copy
import hashlib
import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
from models.baselines import always_up, logistic_regression, previous_direction
from models.calibration import reliability_curve
from models.dataset import KEY_COLUMNS, LABEL_COLUMN, TrainingSet, validate_training_frame
from models.evaluate import Metrics, classification_metrics
from models.nets import SequenceClassifier, build_net
from models.splits import Fold, time_split, windows_in
from models.windows import Standardiser, gather, sort_series, window_ends

log = get_logger(__name__)

WEIGHTS_FILE = "model.pt"
METADATA_FILE = "model.json"


class LstmConfig(BaseModel):
    """Everything that determines a trained LSTM model (hashed into the model version)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    net: Literal["lstm"] = "lstm"
    feature_columns: tuple[str, ...] = FEATURE_COLUMNS
    window: int = Field(default=32, ge=2, le=512, description="Bars per input window")
    hidden_size: int = Field(default=32, ge=1, le=1024)
    num_layers: int = Field(default=1, ge=1, le=4)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
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
    def _check(self) -> LstmConfig:
        if self.gap_bars is not None and self.gap_bars < self.window:
            raise ValueError(f"gap_bars={self.gap_bars} must be >= window={self.window} to avoid leakage")
        if not self.feature_columns:
            raise ValueError("feature_columns must not be empty")
        if self.valid_fraction + self.test_fraction >= 1:
            total = self.valid_fraction + self.test_fraction
            raise ValueError(f"valid_fraction + test_fraction = {total} must be < 1")
        return self

    @property
    def effective_gap_bars(self) -> int:
        return self.gap_bars if self.gap_bars is not None else self.window

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


@contextmanager
def _deterministic(seed: int, threads: int) -> Iterator[None]:
    """Seed every RNG, force deterministic kernels and a fixed thread count; restore afterwards."""
    previous_threads = torch.get_num_threads()
    previous_det = torch.are_deterministic_algorithms_enabled()
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous_det)
        torch.set_num_threads(previous_threads)


def _bar_length(frame: pd.DataFrame) -> timedelta:
    timeframes = sorted(set(frame["timeframe"]))
    unknown = [t for t in timeframes if t not in TIMEFRAME_MS]
    if unknown:
        raise DataValidationError("timeframe", unknown[0], f"unknown; expected one of {sorted(TIMEFRAME_MS)}")
    return timedelta(milliseconds=max(TIMEFRAME_MS[t] for t in timeframes))


class LstmModel:
    """LSTM classifier of the next bar's direction, implementing the Model interface."""

    kind = "lstm"  # the registry's key for this class

    def __init__(self, config: LstmConfig | None = None) -> None:
        self.config = config or LstmConfig()
        self.net: SequenceClassifier | None = None
        self.standardiser: Standardiser | None = None
        self.metadata: ModelMetadata | None = None

    # --- Model interface ---------------------------------------------------------------
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

    def fit(self, dataset: TrainingSet, trained_at: datetime | None = None) -> FitReport:
        """Train on ``dataset``; ``trained_at`` defaults to the dataset's as-of cut (logical time)."""
        cfg = self.config
        trained_at = trained_at or dataset.as_of
        if trained_at.tzinfo is None:
            raise DataValidationError("trained_at", trained_at, "must be a UTC-aware datetime")
        features = list(cfg.feature_columns)
        validate_training_frame(dataset.frame, features)
        started = time.perf_counter()
        frame = sort_series(dataset.frame)
        ts = pd.to_datetime(frame["ts"], utc=True)
        values = frame[features].to_numpy(dtype=np.float64)
        labels = frame[LABEL_COLUMN].to_numpy(dtype=np.float32)
        ends = window_ends(frame, features, cfg.window)
        bar = _bar_length(frame)
        fold = time_split(
            ts, valid_fraction=cfg.valid_fraction, test_fraction=cfg.test_fraction,
            gap=bar * cfg.effective_gap_bars, bar=bar,
        )
        split = {seg.name: windows_in(seg, ts, ends, cfg.window) for seg in fold.segments()}
        samples = {name: len(idx) for name, idx in split.items()}
        for name, n in samples.items():
            if n == 0:
                raise DataValidationError(
                    f"{name}_windows", 0, f"no complete {cfg.window}-bar windows in {name}"
                )
        train_rows = fold.train.contains(ts) & np.isfinite(values).all(axis=1)
        self.standardiser = Standardiser.fit(values[train_rows])
        x_all = self.standardiser.transform(values)
        log.info("lstm.fit.start", extra={"samples": samples, "config_hash": cfg.config_hash()[:12]})

        with _deterministic(cfg.seed, cfg.num_threads):
            net = build_net(cfg.net, len(features), hidden_size=cfg.hidden_size,
                            num_layers=cfg.num_layers, dropout=cfg.dropout)
            history, best_epoch = self._train(net, x_all, labels, split["train"], split["valid"])
            self.net = net
            p_test = self._probabilities(x_all, split["test"])
        train_seconds = time.perf_counter() - started

        test_y = labels[split["test"]].astype(np.int64)
        train_end_rows = split["train"]
        scores = {
            cfg.net: p_test,
            "always_up": always_up(len(test_y)),
            "previous_direction": previous_direction(frame["log_ret_1"].to_numpy()[split["test"]])
            if "log_ret_1" in frame.columns
            else None,
            "logistic": logistic_regression(
                x_all[train_end_rows], labels[train_end_rows].astype(np.int64), x_all[split["test"]], cfg.seed
            ),
        }
        metrics = {
            name: classification_metrics(test_y, p, cfg.threshold)
            for name, p in scores.items()
            if p is not None
        }
        calibration = reliability_curve(test_y, p_test)
        version_basis = json.dumps(
            {"config": cfg.config_hash(), "versions": dict(sorted(dataset.table_versions.items())),
             "symbols": list(dataset.symbols), "start": dataset.start.isoformat(),
             "end": dataset.end.isoformat(), "as_of": dataset.as_of.isoformat()},
            sort_keys=True,
        )
        self.metadata = ModelMetadata(
            model_version=f"{cfg.net}-{hashlib.sha256(version_basis.encode()).hexdigest()[:12]}",
            net=cfg.net,
            config=cfg.model_dump(mode="json"),
            config_hash=cfg.config_hash(),
            feature_columns=tuple(features),
            window=cfg.window,
            seed=cfg.seed,
            threshold=cfg.threshold,
            standardiser_mean=self.standardiser.mean,
            standardiser_std=self.standardiser.std,
            table_versions=dict(dataset.table_versions),
            symbols=dataset.symbols,
            data_start=dataset.start,
            data_end=dataset.end,
            data_as_of=dataset.as_of,
            segments={s.name: (s.start.to_pydatetime(), s.end.to_pydatetime()) for s in fold.segments()},
            samples=samples,
            metrics={name: m.as_dict() for name, m in metrics.items()},
            calibration=[
                {str(k): (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
                for row in calibration.to_dict(orient="records")
            ],
            epochs_trained=len(history),
            best_epoch=best_epoch,
            train_seconds=round(train_seconds, 3),
            code_version=code_version(),
            trained_at=trained_at,
        )
        log.info(
            "lstm.fit.done",
            extra={"model_version": self.metadata.model_version, "seconds": round(train_seconds, 2),
                   "metrics": self.metadata.metrics, "best_epoch": best_epoch},
        )
        return FitReport(
            metrics=metrics, calibration=calibration, fold=fold, samples=samples,
            epochs_trained=len(history), best_epoch=best_epoch, history=history, train_seconds=train_seconds,
        )

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Up-move probability for every bar of ``frame`` that ends a complete window.

        Returns the key columns (exchange, symbol, timeframe, ts) and ``probability``, sorted
        by series and time. Labels are not needed.
        """
        net, standardiser = self._fitted()
        features = list(self.config.feature_columns)
        missing = [c for c in (*KEY_COLUMNS, *features) if c not in frame.columns]
        if missing:
            raise DataValidationError("frame", missing, "missing columns needed to predict")
        ordered = sort_series(frame)
        ends = window_ends(ordered, features, self.config.window)
        x_all = standardiser.transform(ordered[features].to_numpy(dtype=np.float64))
        with _deterministic(self.config.seed, self.config.num_threads):
            self.net = net
            probability = self._probabilities(x_all, ends)
        out = ordered.loc[ends, list(KEY_COLUMNS)].reset_index(drop=True)
        out["ts"] = pd.to_datetime(out["ts"], utc=True)
        out["probability"] = probability.astype(np.float64)
        return out

    def save(self, path: str | Path) -> Path:
        """Write ``model.pt`` (weights) and ``model.json`` (metadata) into the folder ``path``."""
        net, _ = self._fitted()
        meta = self._fitted_metadata()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(net.state_dict(), folder / WEIGHTS_FILE)
        (folder / METADATA_FILE).write_text(meta.model_dump_json(indent=2))
        log.info("lstm.saved", extra={"path": str(folder), "model_version": meta.model_version})
        return folder

    @classmethod
    def load(cls, path: str | Path) -> LstmModel:
        """Load a model saved by :meth:`save`."""
        folder = Path(path)
        meta_path, weights_path = folder / METADATA_FILE, folder / WEIGHTS_FILE
        for required in (meta_path, weights_path):
            if not required.exists():
                raise ConfigError(f"model folder {folder} lacks {required.name}")
        meta = ModelMetadata.model_validate_json(meta_path.read_text())
        model = cls(LstmConfig.model_validate(meta.config))
        net = build_net(meta.net, len(meta.feature_columns), hidden_size=model.config.hidden_size,
                        num_layers=model.config.num_layers, dropout=model.config.dropout)
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

    def _batch(self, x_all: np.ndarray, ends: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(gather(x_all, ends, self.config.window))

    def _probabilities(self, x_all: np.ndarray, ends: np.ndarray) -> np.ndarray:
        net, _ = self._fitted()
        net.eval()
        out = np.empty(len(ends), dtype=np.float32)
        step = 4096
        with torch.no_grad():
            for lo in range(0, len(ends), step):
                logits = net(self._batch(x_all, ends[lo : lo + step]))
                out[lo : lo + step] = torch.sigmoid(logits).numpy()
        return out

    def _train(
        self,
        net: SequenceClassifier,
        x_all: np.ndarray,
        labels: np.ndarray,
        train_ends: np.ndarray,
        valid_ends: np.ndarray,
    ) -> tuple[list[dict[str, float]], int]:
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        optimiser = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        y_valid = torch.from_numpy(labels[valid_ends])
        best_loss, best_epoch, best_state = float("inf"), 0, copy.deepcopy(net.state_dict())
        history: list[dict[str, float]] = []
        self.net = net
        for epoch in range(1, cfg.max_epochs + 1):
            n = len(train_ends) if cfg.samples_per_epoch == 0 else min(cfg.samples_per_epoch, len(train_ends))
            chosen = rng.permutation(train_ends)[:n]
            net.train()
            total = 0.0
            for lo in range(0, n, cfg.batch_size):
                batch = chosen[lo : lo + cfg.batch_size]
                optimiser.zero_grad()
                loss = loss_fn(net(self._batch(x_all, batch)), torch.from_numpy(labels[batch]))
                loss.backward()
                optimiser.step()
                total += float(loss.item()) * len(batch)
            p_valid = torch.from_numpy(self._probabilities(x_all, valid_ends)).clamp(1e-7, 1 - 1e-7)
            valid_loss = float(torch.nn.functional.binary_cross_entropy(p_valid, y_valid).item())
            history.append({"epoch": epoch, "train_loss": total / n, "valid_loss": valid_loss})
            log.info("lstm.epoch", extra={**history[-1], "of": cfg.max_epochs})
            if valid_loss < best_loss - 1e-6:
                best_loss, best_epoch, best_state = valid_loss, epoch, copy.deepcopy(net.state_dict())
            elif epoch - best_epoch >= cfg.patience:
                break
        net.load_state_dict(best_state)
        return history, best_epoch
