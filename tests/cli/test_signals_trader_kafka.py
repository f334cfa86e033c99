"""`up`'s ``trader-paper-signals`` argv, run as a real process against the local broker, trades the champion's
signals at its cost-aware thresholds and stamps one ``order`` row per order it sends.

The champion is a small LSTM trained with the project's own code on REAL Binance BTC/USDT hourly candles
(CryptoDataDownload, shared data) and promoted in a temporary ``<venue>-1h`` registry. The system config is the
default one with ``timeframes = ["1h"]``: the tiny 1m champion of ``test_up_signals`` never trades after the paper
costs (its validation probabilities stay under 0.5: "do not trade: no pair traded after 15.0 bps per side"), and
no 1m segment tried nets a positive return after 30 bps a round trip; on hourly bars from May 2019 the thresholds
the main job's trade task chooses on validation do trade. The choice is cached first (as the main job caches it),
so ``--cost-aware`` reads it instead of re-reading the lake. The champion's out-of-sample bars (after its test
segment starts) are moved to just after the trader starts (whole hours: gold has no time-of-day feature), scored
with the scorer's code (:func:`models.scoring.score_frame`, :func:`pipeline.scorer.signal_messages`) and produced
to ``market.ohlcv`` and ``signals``. Expected orders follow from the mlsignal rule on those probabilities.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cryptolake.schemas import OhlcvV1
from cryptolake.settings import PROJECT_ROOT, Settings
from cryptolake.system import DEFAULT_FILE, load_system
from cryptolake.tables import BAR_STAGES
from models.dataset import TrainingSet
from models.lstm import LstmModel
from models.registry import ModelRegistry
from pipeline.hotpath import bars_frame
from tests.conftest import settings_in
from tests.pipeline.hotproc import CONFIG, batch_gold
from tests.pipeline.streamproc import child_env

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
CANDLES = "market/ohlcv_1h/ingiorn/Binance_BTCUSDT_1h.csv.gz"
START, N_TRAIN, N_LIVE = 15000, 1500, 48  # rows of the hourly file (2019-05-04 on); bars published live
HOUR = timedelta(hours=1)
EPOCH = pd.Timestamp(0, tz="UTC")



def _system_env(venue: str) -> dict[str, str]:
    """The default system config on hourly bars, its local venue named ``venue`` (this run's own instrument on the
    shared topics: a champion trained on the same bars has the same version in every run)."""
    return {"CRYPTOLAKE_SYSTEM__TIMEFRAMES": '["1h"]',
            "CRYPTOLAKE_SYSTEM__VENUES": json.dumps([{"name": venue, "kind": "local", "exchange_id": "binance"}])}


def _hourly(shared_data: Path, venue: str, start: int, n: int) -> list[OhlcvV1]:
    raw = pd.read_csv(shared_data / CANDLES, skiprows=1)
    raw["unix"] = np.where(raw["unix"] < 10**12, raw["unix"] * 1000, raw["unix"])  # the file's early rows: seconds
    raw = raw.sort_values("unix").drop_duplicates("unix").iloc[start:start + n]
    ms = 3_600_000
    return [OhlcvV1(schema_version=1, exchange=venue, symbol="BTC/USDT", timeframe="1h", open=o, high=h, low=lo,
                    close=c, volume=v, event_time=int(t), available_time=int(t) + ms, ingest_time=int(t) + ms)
            for t, o, h, lo, c, v in zip(raw["unix"], raw["open"], raw["high"], raw["low"], raw["close"],
                                         raw["Volume BTC"], strict=True)]


def _train(bars: pd.DataFrame) -> LstmModel:
    """A small LSTM on the batch features and next-bar labels (label known at the next bar's close)."""
    features = batch_gold(bars)
    close = bars.set_index("open_time")["close"]
    ret = np.log((close.shift(-1) / close).to_numpy(dtype=float))
    opens = pd.DatetimeIndex(close.index)
    labels = pd.DataFrame({"ts": opens, "next_log_return": ret, "next_direction": (ret > 0).astype("int32"),
                           "label_available_time": opens + pd.Timedelta(hours=2)}).iloc[:-1]
    frame = features.drop(columns=["bar_date"]).merge(labels, on="ts")
    start, end = frame["ts"].min().to_pydatetime(), frame["ts"].max().to_pydatetime()
    model = LstmModel(CONFIG.model_copy(update={"max_epochs": 30, "patience": 30, "samples_per_epoch": 2048}))
    model.fit(TrainingSet(frame=frame, table_versions={}, symbols=("BTC/USDT",), start=start, end=end, as_of=end))
    return model


def _precache_selector(root: Path, venue: str, registry: ModelRegistry, bars: pd.DataFrame,
                       monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The main job's choice for the champion (:func:`pipeline.trading.selector_for`, cached under the artifacts),
    from its own probabilities on its validation segment; returns the chosen ML thresholds."""
    from pipeline import trading

    entry = registry.champion()
    model = registry.load(entry.version)
    probs = model.predict(batch_gold(bars).drop(columns=["bar_date"]))[["symbol", "ts", "probability"]]
    vs, ve = (pd.Timestamp(x) for x in entry.metadata["segments"]["valid"])
    frame = bars[bars.open_time < ve].merge(probs.rename(columns={"ts": "open_time"}), on=["symbol", "open_time"],
                                            how="left")
    frame["validation"] = frame.open_time >= vs
    monkeypatch.setattr(trading, "validation_frames",
                        lambda config, version, settings: ({"BTC/USDT": frame.reset_index(drop=True)}, True, "passed"))
    settings = settings_in(root)
    market = settings.market.model_copy(update={"exchange": venue, "symbols": ("BTC/USDT",), "timeframe": "1h"})
    scoped = settings.model_copy(update={"market": market})
    record = trading.selector_for(trading.trader_config(scoped), entry.version, scoped).record()
    monkeypatch.undo()
    return dict(record["ml_thresholds"])


def _expected_orders(probs: list[float], enter: float, exit_: float) -> list[int]:
    """The signal indexes the mlsignal rule sends an order on (enter when flat at ``enter`` or above, exit a long
    below ``exit_``; the paper venue fills a market order at the next bar, before the next signal)."""
    out, long = [], False
    for i, p in enumerate(probs):
        if not long and p >= enter:
            out.append(i)
            long = True
        elif long and p < exit_:
            out.append(i)
            long = False
    return out


def _order_rows(settings: Settings) -> pd.DataFrame:
    from deltalake import DeltaTable

    path = BAR_STAGES.path(settings)
    if not Path(path).exists():
        return pd.DataFrame(columns=list(BAR_STAGES.column_names))
    table = DeltaTable(path).to_pandas()
    table["ts"] = pd.to_datetime(table["ts"], utc=True)
    return table[table["stage"] == "order"]


def test_ups_signal_trader_argv_trades_the_champions_published_signals_and_stamps_each_order(
        kafka_bootstrap: str, shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cli.up import build_specs
    from cryptolake.bus import Producer, ensure_topics
    from cryptolake.ids import signal_id
    from models.scoring import score_frame
    from pipeline.scorer import signal_messages
    from trader.feeds.kafka import INPUT_TOPICS

    root = tmp_path / "root"
    settings = settings_in(root)
    settings = settings.model_copy(update={"kafka": settings.kafka.model_copy(
        update={"bootstrap_servers": kafka_bootstrap})})
    venue = f"localex{uuid.uuid4().hex[:8]}"
    candles = _hourly(shared_data, venue, START, N_TRAIN + N_LIVE + 200)
    history = bars_frame(candles)
    registry = ModelRegistry(settings.paths.artifacts_dir / "models" / f"{venue}-1h")
    registry.register(_train(history.iloc[:N_TRAIN].reset_index(drop=True)), promote=True)
    champion = registry.champion()
    th = _precache_selector(root, venue, registry, history.iloc[:N_TRAIN].reset_index(drop=True), monkeypatch)
    assert th["enter"] < 1.0 and th["trades"] >= 5, th  # the validation choice trades (never set by hand)

    ports = itertools.count(43100)
    specs = {s.name: s for s in build_specs(load_system(DEFAULT_FILE, environ=_system_env(venue)), settings, 39998,
                                            lambda: next(ports))}
    argv = specs["trader-paper-signals"].argv
    assert argv[3:5] == ("trade", "signals") and "--cost-aware" in argv
    assert argv[argv.index("--model-version") + 1] == champion.version
    assert argv[argv.index("--timeframe") + 1] == "1h" and argv[argv.index("--exchange") + 1] == venue

    # the champion's out-of-sample bars, moved to open just after the trader starts (whole hours)
    test_start = pd.Timestamp(champion.metadata["segments"]["test"][0])
    live_from = int((history.open_time > test_start).to_numpy().argmax())
    first_open = pd.Timestamp(datetime.now(UTC)).ceil("h") + HOUR
    shift = first_open - history.open_time.iloc[live_from]
    moved = history.copy()
    moved[["open_time", "close_time"]] = moved[["open_time", "close_time"]] + shift
    scores = score_frame(registry.load(champion.version), batch_gold(moved).drop(columns=["bar_date"]))
    live = moved.iloc[live_from:live_from + N_LIVE]
    scores = scores[scores.bar_time.isin(live.open_time)].sort_values("bar_time").reset_index(drop=True)
    assert len(scores) == N_LIVE
    expected = _expected_orders(scores.probability.tolist(), th["enter"], th["exit"])
    assert len(expected) >= 4, (th, scores.probability.describe())  # the chosen thresholds trade on these bars

    env = child_env(settings, CRYPTOLAKE__PATHS__STATE_DIR=str(tmp_path / "state"),
                    CRYPTOLAKE__TRADER__STORE_URL=f"sqlite:///{tmp_path}/signals.db")
    env["CRYPTOLAKE__PATHS__JARS_DIR"] = str(settings.paths.jars_dir)
    ensure_topics(list(INPUT_TOPICS), settings)
    log = tmp_path / "trader.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(list(argv), env=env, stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "thresholds: enter" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.2)
        assert f"thresholds: enter {th['enter']} exit {th['exit']}" in log.read_text()  # the cached choice
        time.sleep(3.0)  # subscribed (the feed seeks to its warm-up start; nothing older is read)
        messages = signal_messages(scores)
        by_bar = {pd.Timestamp(c.event_time, unit="ms", tz="UTC"): c for c in bars_candles(live)}
        produced: dict[pd.Timestamp, float] = {}  # bar -> when its signal was handed to the producer
        with Producer(settings, linger_ms=0) as producer:
            for sig in messages:
                bar = pd.Timestamp(sig.event_time, unit="ms", tz="UTC")
                producer.send_message(by_bar[bar])
                produced[bar] = time.time()
                producer.send_message(sig)
            producer.flush()
        deadline = time.monotonic() + 90
        while len(_order_rows(settings)) < len(expected) and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.5)
        scraped = _close_to_sent_count(specs["trader-paper-signals"].metrics_port)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # nothing of its process group is left
    text = log.read_text()
    stamped = int(text.split("orders stamped=")[1].split()[0])
    rows = _order_rows(settings)
    assert stamped == len(rows) == len(expected)  # one row per order sent, every one written
    assert scraped == len(expected)  # the spec's /metrics observed bar close -> order sent for each
    assert (rows["exchange"] == venue).all() and (rows["symbol"] == "BTC/USDT").all()
    assert (rows["timeframe"] == "1h").all()
    want_bars = [scores.bar_time[i] for i in expected]
    assert sorted(rows["ts"]) == want_bars  # each order's signal's bar
    ids = {signal_id(champion.version, venue, "BTC/USDT", "1h", int(t.value // 1_000_000)) for t in rows["ts"]}
    assert ids == {scores.signal_id[i] for i in expected}  # the signals the orders answer, by id
    stamped_at = (pd.to_datetime(rows["stage_time"], utc=True) - EPOCH).dt.total_seconds().to_numpy()
    hop = stamped_at - np.array([produced[t] for t in rows["ts"].tolist()])
    assert (hop >= -1e-6).all()  # no order is stamped before its signal was produced (stamps are microseconds)
    print(f"\nthresholds enter {th['enter']} exit {th['exit']} ({th['reason']}); {N_LIVE} signals published, "
          f"{len(rows)} orders sent and stamped; signal produced -> order stamped p50 {np.percentile(hop, 50):.3f} s, "
          f"p99 {np.percentile(hop, 99):.3f} s (the {N_LIVE} signals produced in one burst)")


def _close_to_sent_count(port: int) -> float:
    """``cryptolake_trader_close_to_sent_seconds_count`` scraped from the trader's /metrics."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(s.value for fam in text_string_to_metric_families(text) for s in fam.samples
               if s.name == "cryptolake_trader_close_to_sent_seconds_count")


def bars_candles(bars: pd.DataFrame) -> list[OhlcvV1]:
    """``bars`` (bars_frame rows) as the candles the market connector publishes (received at their close)."""
    out = []
    opens = ((bars["open_time"] - EPOCH).dt.total_seconds() * 1000).round().astype("int64")
    for b, t in zip(bars.itertuples(), opens.tolist(), strict=True):
        out.append(OhlcvV1(schema_version=1, exchange=b.exchange, symbol=b.symbol, timeframe=b.timeframe,
                           open=b.open, high=b.high, low=b.low, close=b.close, volume=b.volume, event_time=t,
                           available_time=t + 3_600_000, ingest_time=t + 3_600_000))
    return out
