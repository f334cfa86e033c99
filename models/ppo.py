"""A PPO agent that trades long/flat under the node's rules, behind the ``Model`` protocol.

Why a torch implementation rather than stable-baselines3: sb3 is not locked in this project, and it
would bring a second training stack (its own seeding, threads, logging and save format) for ~150
lines of clipped-surrogate PPO; here the agent shares what the nets use (``deterministic`` for seeds,
deterministic kernels and the thread count, :mod:`models.windows` for the feature window, the
walk-forward folds, the leaderboard and the registry), and its rollouts stay deterministic for a seed.

Training: :mod:`models.ppo_agent` (config, network, loop). Evaluation: the greedy policy (long iff
P(long) >= 0.5) under the node's rules against buy-and-hold, a random policy and flat.

The model's ``probability`` is the policy's probability of the long action for the window ending
at a bar, so it scores, publishes signals and is reported like every model; the strategy ``ppo``
(``trader/strategies/ppo.py``) holds the greedy action's target position on the node.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field

from cryptolake.errors import ConfigError, DataValidationError
from cryptolake.logs import get_logger
from cryptolake.types import TIMEFRAME_MS
from models.baselines import segment_predictions
from models.dataset import KEY_COLUMNS, LABEL_COLUMN, TrainingSet, validate_training_frame
from models.env import ExecutionRules, MarketData, TradingEnv, market_data, simulate
from models.evaluate import Metrics
from models.leaderboard import strategy_metrics
from models.ppo_agent import THRESHOLD, PolicyNet, PpoConfig, greedy, long_probability, train_policy
from models.sequence import code_hash, code_version
from models.splits import Fold, time_split
from models.training import deterministic
from models.walkforward import segment_rows
from models.windows import Standardiser, run_ids, sort_series, window_ends

log = get_logger(__name__)

KIND = "ppo"
WEIGHTS_FILE = "policy.pt"
METADATA_FILE = "model.json"
BENCHMARKS = ("ppo", "buy_and_hold", "random", "flat")
__all__ = ["KIND", "THRESHOLD", "PolicyNet", "PpoConfig", "PpoFitReport", "PpoModel", "backtest_report",
           "market_returns", "train_policy"]


def market_returns(market: MarketData, actions_of: Callable[[int, int], np.ndarray], rules: ExecutionRules,
                   ts: pd.Series) -> tuple[pd.Series, dict[str, float]]:
    """Per-bar log returns of the account (equal weight over series per bar) and totals over the chunks.

    ``actions_of(first, last)`` gives the actions for decision rows ``first..last`` of a chunk; every
    chunk starts flat with the rules' initial cash.
    """
    parts, fills, fees, rejected, long_bars, bars = [], 0, 0.0, 0, 0, 0
    for first, last in market.chunks:
        actions = actions_of(first, last)
        equity, account = simulate(market, first, actions, rules)
        r = np.diff(np.log(equity))
        parts.append(pd.Series(r, index=pd.to_datetime(ts.iloc[first + 1 : last + 2].to_numpy(), utc=True)))
        fills, fees, rejected = fills + account.fills, fees + account.fees, rejected + account.rejected
        long_bars, bars = long_bars + int(np.sum(actions)), bars + len(actions)
    if not parts:
        raise DataValidationError("segment", 0, "no decision rows to evaluate")
    returns = pd.concat(parts).groupby(level=0).mean().sort_index()
    return returns, {"fills": float(fills), "fees": fees, "rejected": float(rejected),
                     "exposure": long_bars / bars if bars else 0.0}


def backtest_report(market: MarketData, probability: Callable[[np.ndarray], np.ndarray], rules: ExecutionRules,
                    ts: pd.Series, bars_per_year: float, seed: int, draws: int) -> dict[str, dict[str, float]]:
    """The greedy policy, buy-and-hold, a random policy (mean of ``draws``) and flat, under the node's rules."""
    rows = market.decision_rows()
    p = dict(zip(rows.tolist(), probability(rows).tolist(), strict=True))
    out: dict[str, dict[str, float]] = {}
    returns, extra = market_returns(market, lambda a, b: greedy(np.array([p[r] for r in range(a, b + 1)])),
                                    rules, ts)
    out["ppo"] = {**strategy_metrics(returns, bars_per_year), **extra}
    returns, extra = market_returns(market, lambda a, b: np.ones(b - a + 1, dtype=np.int64), rules, ts)
    out["buy_and_hold"] = {**strategy_metrics(returns, bars_per_year), **extra}
    rng = np.random.default_rng(seed)
    runs = []
    for _ in range(draws):
        returns, extra = market_returns(market, lambda a, b: rng.integers(0, 2, b - a + 1), rules, ts)
        runs.append({**strategy_metrics(returns, bars_per_year), **extra})
    out["random"] = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
    returns, extra = market_returns(market, lambda a, b: np.zeros(b - a + 1, dtype=np.int64), rules, ts)
    out["flat"] = {**strategy_metrics(returns, bars_per_year), **extra}
    return out

class PpoMetadata(BaseModel):
    """What is saved as JSON beside the policy weights."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_version: str
    kind: str = KIND
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
    metrics: dict[str, dict[str, float | int | None]]  # NaN (e.g. AUC of one class) is saved as None
    backtest: dict[str, dict[str, dict[str, float | None]]]
    iterations: int
    best_iteration: int
    stopped: str
    train_seconds: float
    code_version: str
    code_hash: str
    trained_at: datetime
    fold_metrics: list[dict[str, Any]] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class PpoFitReport:
    """The outcome of :meth:`PpoModel.fit`."""

    metrics: dict[str, Metrics]
    backtest: dict[str, dict[str, dict[str, float]]]  # segment -> strategy -> metrics (node rules)
    fold: Fold
    samples: dict[str, int]
    history: list[dict[str, float]]
    best_iteration: int
    stopped: str
    train_seconds: float
    predictions: pd.DataFrame  # valid and test rows: keys, segment, label, next_log_return, ppo, baselines
    extra: dict[str, Any] = field(default_factory=dict)


def with_bars(frame: pd.DataFrame, bars: pd.DataFrame | None) -> pd.DataFrame:
    """The training frame with each bar's ``open`` and ``close`` (from ``bars``: silver-shaped, keyed by open_time)."""
    if bars is None:
        if "open" not in frame.columns or "close" not in frame.columns:
            raise DataValidationError("bars", None, "the training set has no bar opens: pass the bars "
                                      "(exchange, symbol, timeframe, open_time, open, close)")
        return frame
    need = ("exchange", "symbol", "timeframe", "open_time", "open", "close")
    missing = [c for c in need if c not in bars.columns]
    if missing:
        raise DataValidationError("bars.columns", list(bars.columns), f"missing {missing}")
    prices = bars[list(need)].rename(columns={"open_time": "ts"})
    prices = prices.assign(ts=pd.to_datetime(prices["ts"], utc=True))
    out = frame.drop(columns=[c for c in ("open", "close") if c in frame.columns])
    out = out.assign(ts=pd.to_datetime(out["ts"], utc=True))
    return out.merge(prices, on=list(KEY_COLUMNS), how="left", validate="one_to_one")


def _finite(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in values.items()}


def _bar_length(frame: pd.DataFrame) -> timedelta:
    return timedelta(milliseconds=max(TIMEFRAME_MS[t] for t in set(frame["timeframe"])))


class PpoModel:
    """The PPO agent as a :class:`models.base.Model` (``probability`` = P(long action))."""

    def __init__(self, config: PpoConfig | None = None) -> None:
        self.config = config or PpoConfig()
        self.net: PolicyNet | None = None
        self.standardiser: Standardiser | None = None
        self.metadata: PpoMetadata | None = None

    # --- Model interface ---------------------------------------------------------------
    @property
    def kind(self) -> str:
        return KIND

    @property
    def model_version(self) -> str:
        return self._meta().model_version

    @property
    def threshold(self) -> float:
        return THRESHOLD

    @property
    def feature_columns(self) -> tuple[str, ...]:
        return self.config.feature_columns

    @property
    def window(self) -> int:
        return self.config.window

    @property
    def oos_start(self) -> datetime:
        return self._meta().segments["test"][0]

    @property
    def trained_at(self) -> datetime:
        return self._meta().trained_at

    def describe(self) -> dict[str, Any]:
        return self._meta().model_dump(mode="json")

    def fit(self, dataset: TrainingSet, trained_at: datetime | None = None, fold: Fold | None = None, *,
            bars: pd.DataFrame | None = None, on_iteration: Callable[[dict[str, float]], None] | None = None
            ) -> PpoFitReport:
        """Train on ``fold``'s training segment (one time split if None); report valid and test results.

        ``bars`` (silver-shaped) give each bar's open, where the env fills orders; a frame that already
        has ``open`` and ``close`` needs none.
        """
        cfg = self.config
        trained_at = trained_at or dataset.as_of
        if trained_at.tzinfo is None:
            raise DataValidationError("trained_at", trained_at, "must be a UTC-aware datetime")
        features = list(cfg.feature_columns)
        validate_training_frame(dataset.frame, features)
        started = time.perf_counter()
        frame = with_bars(sort_series(dataset.frame), bars)
        ts = pd.to_datetime(frame["ts"], utc=True)
        values = frame[features].to_numpy(dtype=np.float64)
        labels = frame[LABEL_COLUMN].to_numpy(dtype=np.float64)
        ends = window_ends(frame, features, cfg.window)
        ends = ends[np.isfinite(labels[ends])]
        bar = _bar_length(frame)
        gap = bar * cfg.gap_bars
        if fold is None:
            fold = time_split(ts, valid_fraction=cfg.valid_fraction, test_fraction=cfg.test_fraction, gap=gap, bar=bar)
        elif fold.gap < gap:
            raise DataValidationError("fold.gap", fold.gap, f"must be >= {gap} (window, 1 + embargo)")
        split = segment_rows(fold, ts, ends, cfg.window, 1, bar)
        for name, idx in split.items():
            if len(idx) == 0:
                raise DataValidationError(f"{name}_windows", 0, f"no complete {cfg.window}-bar windows in {name}")
        train_rows = fold.train.contains(ts) & np.isfinite(values).all(axis=1)
        self.standardiser = Standardiser.fit(values[train_rows])
        x_all = self.standardiser.transform(values)
        run = run_ids(frame, features)
        markets = {seg.name: market_data(frame, x_all, split[seg.name], run, cfg.window, seg.end)
                   for seg in fold.segments()}
        samples = {name: len(m.decision_rows()) for name, m in markets.items()}
        bars_per_year = 365.25 * 24 * 3600 / bar.total_seconds()
        rules = cfg.rules

        def score(net: PolicyNet, market: MarketData) -> float:
            returns, _ = market_returns(market, lambda a, b: greedy(long_probability(
                net, market.observations(np.arange(a, b + 1)))), rules, ts)
            return float(returns.mean())

        with deterministic(cfg.seed, cfg.num_threads):
            net = PolicyNet(markets["train"].obs_size, cfg.hidden_size)
            envs = [TradingEnv(markets["train"], rules, cfg.episode_bars, cfg.reward_scale)
                    for _ in range(cfg.n_envs)]
            history, best_iteration, stopped = train_policy(net, envs, lambda n: score(n, markets["valid"]), cfg,
                                                            on_iteration)
            self.net = net

            def prob(market: MarketData) -> Callable[[np.ndarray], np.ndarray]:
                return lambda rows: long_probability(net, market.observations(rows))

            backtest = {name: backtest_report(markets[name], prob(markets[name]), rules, ts, bars_per_year,
                                              cfg.seed, cfg.random_draws) for name in ("valid", "test")}
            scored = {name: long_probability(net, markets[name].observations(split[name]))
                      for name in ("valid", "test")}
        train_seconds = time.perf_counter() - started

        predictions, metrics = segment_predictions(frame, labels, split, x_all, scored, KIND, THRESHOLD, cfg.seed)
        basis = json.dumps(
            {"config": cfg.config_hash(), "versions": dict(sorted(dataset.table_versions.items())),
             "symbols": list(dataset.symbols), "start": dataset.start.isoformat(), "end": dataset.end.isoformat(),
             "as_of": dataset.as_of.isoformat(),
             "fold": [s.start.isoformat() for s in fold.segments()] + [fold.test.end.isoformat()]},
            sort_keys=True,
        )
        self.metadata = PpoMetadata(
            model_version=f"{KIND}-{hashlib.sha256(basis.encode()).hexdigest()[:12]}",
            config=cfg.model_dump(mode="json"), config_hash=cfg.config_hash(), feature_columns=tuple(features),
            window=cfg.window, seed=cfg.seed, threshold=THRESHOLD, standardiser_mean=self.standardiser.mean,
            standardiser_std=self.standardiser.std, table_versions=dict(dataset.table_versions),
            symbols=dataset.symbols, data_start=dataset.start, data_end=dataset.end, data_as_of=dataset.as_of,
            segments={s.name: (s.start.to_pydatetime(), s.end.to_pydatetime()) for s in fold.segments()},
            samples=samples, metrics={k: _finite(m.as_dict()) for k, m in metrics.items()},
            backtest={seg: {k: _finite(v) for k, v in by.items()} for seg, by in backtest.items()},
            iterations=len(history), best_iteration=best_iteration, stopped=stopped,
            train_seconds=round(train_seconds, 3), code_version=code_version(), code_hash=code_hash(),
            trained_at=trained_at, extra={k: v for k, v in dataset.extra.items() if isinstance(v, str)},
        )
        log.debug("ppo.fit.done", extra={"model_version": self.metadata.model_version,
                                        "seconds": round(train_seconds, 2), "best_iteration": best_iteration})
        return PpoFitReport(metrics=metrics, backtest=backtest, fold=fold, samples=samples, history=history,
                            best_iteration=best_iteration, stopped=stopped, train_seconds=train_seconds,
                            predictions=predictions)

    def with_fold_metrics(self, fold_metrics: list[dict[str, Any]]) -> None:
        """Record the walk-forward fold metrics in the metadata (saved and registered with the model)."""
        self.metadata = self._meta().model_copy(update={"fold_metrics": list(fold_metrics)})

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """P(long) of the policy for every bar of ``frame`` that ends a complete window (keys + ``probability``)."""
        net, standardiser = self._fitted()
        cfg = self.config
        features = list(cfg.feature_columns)
        missing = [c for c in (*KEY_COLUMNS, *features) if c not in frame.columns]
        if missing:
            raise DataValidationError("frame", missing, "missing columns needed to predict")
        ordered = sort_series(frame)
        ends = window_ends(ordered, features, cfg.window)
        x_all = standardiser.transform(ordered[features].to_numpy(dtype=np.float64))
        offsets = np.arange(-cfg.window + 1, 1)
        obs = x_all[ends[:, None] + offsets[None, :]].reshape(len(ends), -1)
        with deterministic(cfg.seed, cfg.num_threads):
            probability = long_probability(net, obs)
        out = ordered.loc[ends, list(KEY_COLUMNS)].reset_index(drop=True)
        out["ts"] = pd.to_datetime(out["ts"], utc=True)
        out["probability"] = probability
        return out

    def save(self, path: str | Path) -> Path:
        """Write ``policy.pt`` (weights) and ``model.json`` (metadata) into the folder ``path``."""
        net, _ = self._fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(net.state_dict(), folder / WEIGHTS_FILE)
        (folder / METADATA_FILE).write_text(self._meta().model_dump_json(indent=2))
        return folder

    @classmethod
    def load(cls, path: str | Path) -> PpoModel:
        """Load a model saved by :meth:`save`."""
        folder = Path(path)
        for required in (folder / METADATA_FILE, folder / WEIGHTS_FILE):
            if not required.exists():
                raise ConfigError(f"model folder {folder} lacks {required.name}")
        meta = PpoMetadata.model_validate_json((folder / METADATA_FILE).read_text())
        model = cls(PpoConfig.model_validate(meta.config))
        net = PolicyNet(model.config.window * len(meta.feature_columns), model.config.hidden_size)
        net.load_state_dict(torch.load(folder / WEIGHTS_FILE, weights_only=True))
        net.eval()
        model.net, model.metadata = net, meta
        model.standardiser = Standardiser(mean=meta.standardiser_mean, std=meta.standardiser_std)
        return model

    # --- internals ---------------------------------------------------------------------
    def _fitted(self) -> tuple[PolicyNet, Standardiser]:
        if self.net is None or self.standardiser is None:
            raise ConfigError("model is not fitted: call fit() or load() first")
        return self.net, self.standardiser

    def _meta(self) -> PpoMetadata:
        if self.metadata is None:
            raise ConfigError("model is not fitted: call fit() or load() first")
        return self.metadata
