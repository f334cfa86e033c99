"""The whole streaming chain in one driver (`stream score --features --land market.ohlcv`) through a SIGKILL.

REAL candles (nautilus_trader 1m BTC bars, ../shared/data) under a unique exchange name go to a
private broker's ``market.ohlcv``. One child lands them, updates silver and gold at each bar
close and scores the new gold rows with a tiny LSTM registered beforehand. The child is SIGKILLed
at a random moment while candles are still arriving, then restarted. Counted against the source:
every candle once in bronze and silver; gold equal to the batch feature definition over that
silver; one signal per out-of-sample bar, equal to the model's scores; every bar's stages stamped
in order (ingest <= landed <= gold <= signal).
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cryptolake import topics
from cryptolake.bus import Producer, ensure_topics
from cryptolake.schemas import OhlcvV1
from cryptolake.settings import Settings
from cryptolake.tables import BAR_STAGES, GOLD_FEATURES, SIGNALS_TABLE, SILVER_BARS
from models.base import Model
from models.dataset import TrainingSet
from models.lstm import LstmConfig, LstmModel
from models.registry import ModelRegistry
from models.scoring import score_frame
from spark_jobs.gold.features import WARMUP_BARS, features_pandas
from tests.pipeline.streamproc import (
    bronze_candles,
    child_env,
    delta_frame,
    kill_group,
    private_stack,
    real_candles,
    start_child,
    stop_child,
    wait_for,
)

pytestmark = [pytest.mark.spark, pytest.mark.kafka, pytest.mark.slow]
HISTORY, LIVE = 1_000, 240  # candles sent before the child starts; candles sent while it runs
TRAIN = 900  # the model learns from the first TRAIN candles' features (its test segment is the end of them)
CONFIG = LstmConfig(window=8, hidden_size=8, max_epochs=2, patience=1, samples_per_epoch=256, batch_size=128,
                    valid_fraction=0.2, test_fraction=0.2, seed=11)
KEYS = ["exchange", "symbol", "timeframe", "ts"]


@dataclass(frozen=True)
class Chain:
    settings: Settings
    exchange: str
    candles: list[OhlcvV1]
    model: Model
    registry_dir: Path
    expected: pd.DataFrame  # the model's scores of the out-of-sample bars, from the batch features of the candles


def _bars(candles: list[OhlcvV1]) -> pd.DataFrame:
    """Silver-bars-shaped rows of the candles (for training the model before anything is streamed)."""
    open_time = pd.to_datetime([c.event_time for c in candles], unit="ms", utc=True)
    return pd.DataFrame({
        "exchange": [c.exchange for c in candles], "symbol": [c.symbol for c in candles],
        "timeframe": [c.timeframe for c in candles], "open_time": open_time,
        "close_time": open_time + pd.Timedelta(minutes=1),
        "open": [c.open for c in candles], "high": [c.high for c in candles], "low": [c.low for c in candles],
        "close": [c.close for c in candles], "volume": [c.volume for c in candles],
    })


def _train(bars: pd.DataFrame) -> Model:
    """A tiny LSTM on the bars' features and next-bar labels (1-minute steps only)."""
    features = features_pandas(bars)
    close = bars.set_index("open_time")["close"]
    nxt = close.shift(-1)
    ret = np.log(nxt / close)
    labels = pd.DataFrame({"ts": close.index, "next_log_return": ret.to_numpy(),
                           "next_direction": (ret > 0).astype("int32").to_numpy(),
                           "label_available_time": close.index + pd.Timedelta(minutes=2)}).iloc[:-1]
    frame = features.drop(columns=["bar_date"]).merge(labels, on="ts")
    start, end = frame["ts"].min().to_pydatetime(), frame["ts"].max().to_pydatetime()
    dataset = TrainingSet(frame=frame, table_versions={}, symbols=(str(bars["symbol"].iloc[0]),), start=start,
                          end=end, as_of=end)
    model = LstmModel(CONFIG)
    model.fit(dataset)
    return model


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory, lake_settings: Settings, shared_data: Path) -> Iterator[Chain]:
    """A private broker and lake, the real candles, and the model registered (promoted) in its own registry."""
    from tests.pipeline.streamproc import stop_private_stack

    root = tmp_path_factory.mktemp("stream_chain")
    settings = private_stack(root, lake_settings)
    exchange = f"chain{uuid.uuid4().hex[:8]}"
    candles = real_candles(shared_data, exchange, HISTORY + LIVE)
    model = _train(_bars(candles[:TRAIN]))
    registry_dir = root / "registry"
    ModelRegistry(registry_dir).register(model, promote=True)
    expected = score_frame(model, features_pandas(_bars(candles)))
    expected = expected[expected["bar_time"] >= model.oos_start]
    try:
        yield Chain(settings, exchange, candles, model, registry_dir, expected)
    finally:
        stop_private_stack(settings)


def _send(settings: Settings, candles: list[OhlcvV1]) -> None:
    """Publish the candles stamped as received now (a live feed delivers each at its close)."""
    ensure_topics([topics.MARKET_OHLCV], settings)
    now = int(time.time() * 1000)
    with Producer(settings) as producer:
        for c in candles:
            producer.send_message(c.model_copy(update={"ingest_time": now}))


def _rows(spec_path: str, exchange: str) -> pd.DataFrame:
    frame = delta_frame(spec_path)
    return frame[frame["exchange"] == exchange] if not frame.empty else frame


def _signals(chain: Chain) -> pd.DataFrame:
    return _rows(SIGNALS_TABLE.path(chain.settings), chain.exchange)


def test_sigkill_of_the_whole_chain_then_restart_gives_every_bar_once_and_one_signal_per_bar(
        chain: Chain, tmp_path: Path) -> None:
    settings, exchange, candles, model = chain.settings, chain.exchange, chain.candles, chain.model
    oos_bars = len(chain.expected)
    score = ["stream", "score", "--features", "--land", topics.MARKET_OHLCV, "--trigger-seconds", "0.5",
             "--model-version", model.model_version, "--registry-dir", str(chain.registry_dir)]
    log = tmp_path / "chain.log"
    env = child_env(settings)
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    _send(settings, candles[:HISTORY])
    first = start_child(score, env, log)
    sent = HISTORY
    try:
        wait_for(lambda: len(_signals(chain)) > 0, 420, "the first signals", first, log)
        kill_after = time.monotonic() + rng.uniform(0.0, 4.0)  # a random moment while candles arrive
        while time.monotonic() < kill_after and sent < HISTORY + LIVE // 2:
            _send(settings, candles[sent:sent + 20])
            sent += 20
            time.sleep(0.25)
    finally:
        kill_group(first)
    signals_at_kill = len(_signals(chain))
    assert 0 < signals_at_kill < oos_bars, (seed, signals_at_kill, oos_bars)  # killed mid-stream
    _send(settings, candles[sent:])  # the feed went on while the driver was down
    second = start_child(score, env, log)
    try:
        wait_for(lambda: len(_signals(chain)) >= oos_bars, 420, f"{oos_bars} signals (seed {seed})", second, log)
    finally:
        code = stop_child(second)
    assert code == 0, log.read_text(errors="replace")[-2000:]

    source = sorted(c.event_time for c in candles)
    landed = bronze_candles(settings, exchange)
    assert sorted(int(t.timestamp() * 1000) for t in landed["event_time"]) == source, seed  # bronze: each once
    silver = _rows(SILVER_BARS.path(settings), exchange)
    assert sorted(int(t.timestamp() * 1000) for t in silver["open_time"]) == source, seed  # silver: each once

    gold = _rows(GOLD_FEATURES.path(settings), exchange)
    assert not gold.duplicated(KEYS).any(), seed
    expected = features_pandas(silver)  # the batch definition over the streamed silver
    assert len(expected) > len(candles) - WARMUP_BARS - 20, len(expected)  # few bars flagged invalid, if any
    assert sorted(gold["ts"]) == sorted(expected["ts"]), (seed, len(gold), len(expected))
    both = gold.merge(expected, on=KEYS, suffixes=("", "_batch"))
    for col in model.feature_columns:
        diff = (both[col] - both[f"{col}_batch"]).abs().max()
        assert diff < 1e-6, (col, diff, seed)  # the streaming path computes exactly the batch features

    signals = _signals(chain)
    scored = score_frame(model, gold.assign(ts=pd.to_datetime(gold["ts"], utc=True)))
    scored = scored[scored["bar_time"] >= model.oos_start]
    assert set(scored["signal_id"]) == set(chain.expected["signal_id"]), seed
    assert len(scored) == oos_bars and signals["signal_id"].is_unique, (seed, len(scored), len(signals))
    assert set(signals["signal_id"]) == set(scored["signal_id"]), seed  # 0 lost, 0 doubled, 0 invented
    check = signals.merge(scored, on="signal_id", suffixes=("", "_model"))
    assert (check["probability"] - check["probability_model"]).abs().max() < 1e-6, seed

    stages = delta_frame(BAR_STAGES.path(settings))
    stages = stages[stages["exchange"] == exchange].groupby([*KEYS, "stage"])["stage_time"].min().unstack()
    stamped = stages.loc[stages["signal"].notna()]
    assert len(stamped) == oos_bars, (seed, len(stamped))  # every signal's bar has its stage stamps
    assert stamped[["ingest", "landed", "gold"]].notna().all().all(), seed
    assert ((stamped["ingest"] <= stamped["landed"]) & (stamped["landed"] <= stamped["gold"])
            & (stamped["gold"] <= stamped["signal"])).all(), seed
