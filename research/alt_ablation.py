"""Ablation: does alternative data help? Market-only against market + alt features on the same folds.

The one real period where prices and text overlap in the shared data is January 2022: the 1-minute
BTC perpetual bars (nautilus_trader's test data, resampled here to 5-minute bars) and that month's crypto
news headlines and Ethereum tweets (the replay connectors, scored by the project's NLP functions). Gold
features come from :func:`spark_jobs.gold.features.features_pandas`, the alt features from the same
DuckDB SQL as ``gold.alt_features`` (point in time: a bar sees only documents available by its
close). Both arms train the same net with the same seed on the same purged walk-forward folds;
the only difference is the feature list. The alt features of a bar with no document in a window are
counts of 0 and a neutral sentiment of 0 (:func:`models.dataset.fill_no_document`: no document is the
observation, nothing is imputed), as in ``cryptolake train --source lake --with-alt``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from cryptolake.errors import DataValidationError
from cryptolake.settings import Settings
from cryptolake.tables import ALT_FEATURE_COLUMNS, FEATURE_COLUMNS
from ingest.connectors.base import ListSink
from ingest.news.replay import CryptoNewsReplay
from ingest.social.replay import SocialReplay
from models.dataset import TrainingSet, fill_no_document
from models.runner import RunPlan, run_walk_forward
from models.sequence import SequenceConfig
from spark_jobs.gold.alt_features import compute_alt_features
from spark_jobs.gold.features import features_pandas
from spark_jobs.silver import documents_nlp as nlp

START, END = datetime(2022, 1, 1, tzinfo=UTC), datetime(2022, 2, 1, tzinfo=UTC)
BARS_FILE = Path("market/ohlcv_1m/nautilus_trader/btc-perp-20211231-20220201_1m.csv.gz")
NEWS_FILE = Path("news/cryptonews.csv.gz")
TWEETS_FILE = Path("social/twitter/ethereum_tweets.csv")
EXCHANGE, SYMBOL, COIN = "ftx", "BTC-PERP", "BTC"


@dataclass(frozen=True)
class AblationResult:
    """Per fold and arm: the net's and the logistic baseline's out-of-sample metrics."""

    folds: pd.DataFrame  # arm, fold, model, n (test bars), auc, accuracy, log_loss
    alt_columns: tuple[str, ...]
    documents: int
    bars: int

    def summary(self) -> pd.DataFrame:
        """Mean and per-fold spread of each (model, arm)."""
        return (self.folds.groupby(["model", "arm"])[["auc", "accuracy", "log_loss"]]
                .agg(["mean", "std"]).round(4))


def resample(minute_bars: pd.DataFrame, timeframe: str = "5m") -> pd.DataFrame:
    """OHLCV bars of ``timeframe`` from 1-minute bars (a bucket needs at least one minute)."""
    freq = {"5m": "5min", "15m": "15min"}.get(timeframe)
    if freq is None:
        raise DataValidationError("timeframe", timeframe, "the ablation resamples to 5m or 15m")
    m = minute_bars.set_index("open_time").sort_index()
    out = m.resample(freq, label="left", closed="left").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}).dropna().reset_index()
    out["close_time"] = out["open_time"] + pd.Timedelta(freq)
    return out.assign(exchange=EXCHANGE, symbol=SYMBOL, timeframe=timeframe)


def load_bars(shared: Path, timeframe: str = "5m") -> pd.DataFrame:
    """The real BTC perpetual 1-minute bars of January 2022, resampled."""
    raw = pd.read_csv(shared / BARS_FILE)
    raw["open_time"] = pd.to_datetime(raw["timestamp"], utc=True)
    raw = raw[(raw["open_time"] >= START) & (raw["open_time"] < END)].drop_duplicates("open_time")
    return resample(raw[["open_time", "open", "high", "low", "close", "volume"]], timeframe)


def load_documents(shared: Path) -> pd.DataFrame:
    """January 2022's headlines and tweets as alt-feature documents (the columns of DOC_COLUMNS)."""
    from cryptolake.schemas import NewsArticleV1

    sink = ListSink()
    clock = lambda: END  # noqa: E731  the ingest time is not a feature; fixed for reproducibility
    CryptoNewsReplay(shared / NEWS_FILE, since=START, until=END, clock=clock).run(sink)
    SocialReplay(shared / TWEETS_FILE, "eth_tweets", since=START, until=END, clock=clock).run(sink)
    rows = []
    for m in sink.accepted:
        text = f"{m.title}. {m.body}" if isinstance(m, NewsArticleV1) else str(getattr(m, "text", ""))
        rows.append({"doc_key": m.key(), "kind": "news" if isinstance(m, NewsArticleV1) else "social",
                     "coins": nlp.coins_mentioned(text), "available_time": pd.Timestamp(m.available_time, unit="ms",
                                                                                         tz="UTC"),
                     "sentiment": nlp.sentiment(nlp.clean_text(text))})
    return pd.DataFrame(rows)


def training_frame(bars: pd.DataFrame, docs: pd.DataFrame) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Gold features + next-bar labels + point-in-time alt features; the alt columns that carry information."""
    features = features_pandas(bars)
    for col in ("ts", "close_time"):
        raw = features[col]
        features[col] = (pd.to_datetime(raw, unit="ms", utc=True) if pd.api.types.is_integer_dtype(raw)
                         else pd.to_datetime(raw, utc=True))
    step = features["close_time"] - features["ts"]
    nxt = features["close"].shift(-1)
    contiguous = features["ts"].shift(-1) == features["close_time"]
    features["next_log_return"] = np.where(contiguous, np.log(nxt / features["close"]), np.nan)
    features["next_direction"] = (features["next_log_return"] > 0).astype(float)
    features["label_available_time"] = features["close_time"] + step
    features = features[np.isfinite(features["next_log_return"])].reset_index(drop=True)
    con = duckdb.connect()
    try:
        alt = compute_alt_features(con, features.assign(coin=COIN)[["coin", "timeframe", "ts", "close_time"]], docs)
    finally:
        con.close()
    alt["close_time"] = pd.to_datetime(alt["close_time"], utc=True)
    frame, usable = fill_no_document(features.merge(alt[["close_time", *ALT_FEATURE_COLUMNS]], on="close_time",
                                                    how="left"))
    frame["next_direction"] = frame["next_direction"].astype(int)
    return frame, usable


def run_ablation(shared: Path, settings: Settings, *, folds: int = 5, net: str = "lstm", timeframe: str = "5m",
                 base: SequenceConfig | None = None,
                 progress: Callable[[str, int, str], None] | None = None) -> AblationResult:
    """Train ``net`` on market features, then on market + alt features, on the same folds; compare."""
    bars, docs = load_bars(shared, timeframe), load_documents(shared)
    frame, alt_columns = training_frame(bars, docs)
    if not alt_columns:
        raise DataValidationError("alt_features", "all constant", "no document reached a bar: nothing to ablate")
    dataset = TrainingSet(frame=frame, table_versions={}, symbols=(SYMBOL,), start=START, end=END, as_of=END,
                          extra={"source": f"{BARS_FILE} resampled to {timeframe}; {len(docs)} documents"})
    base = base or SequenceConfig(window=24, hidden_size=16, max_epochs=6, patience=2, samples_per_epoch=4096,
                                  seed=settings.seed)
    rows = []
    for arm, columns in (("market", FEATURE_COLUMNS), ("market+alt", (*FEATURE_COLUMNS, *alt_columns))):
        config = base.model_copy(update={"net": net, "feature_columns": tuple(columns)})
        plan = RunPlan(nets=(net,), n_folds=folds, base=config)
        result = run_walk_forward(dataset, plan, settings, workers=0, progress=progress)
        table = result.folds
        for _, r in table[table["model"].isin([net, "logistic"])].iterrows():
            rows.append({"arm": arm, "fold": int(r["fold"]), "model": r["model"], "n": int(r["n"]),
                         "auc": float(r["auc"]),
                         "accuracy": float(r["accuracy"]), "log_loss": float(r["log_loss"])})
    return AblationResult(folds=pd.DataFrame(rows), alt_columns=alt_columns, documents=len(docs), bars=len(frame))
