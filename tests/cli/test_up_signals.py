"""`up` paper-trades the champion's signals (`cryptolake trade signals`) once the streamed market has a champion.

The champion is a tiny LSTM trained on REAL Binance BTCUSDT 1m candles (the local exchange's replay file) and
promoted in the localex-1m registry, as training would.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cryptolake.errors import ConfigError
from cryptolake.system import DEFAULT_FILE, load_system
from models.registry import ModelRegistry
from pipeline.hotpath import bars_frame
from tests.conftest import settings_in
from tests.pipeline.hotproc import batch_gold, train_tiny
from tests.pipeline.streamproc import real_candles

N_BARS = 900


@pytest.fixture(scope="module")
def champion_root(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """Artifacts whose localex-1m registry has a promoted tiny LSTM on REAL 1m bars."""
    root = tmp_path_factory.mktemp("signals_up")
    model = train_tiny(bars_frame(real_candles(shared_data, "localex", N_BARS)))
    ModelRegistry(settings_in(root).paths.artifacts_dir / "models" / "localex-1m").register(model, promote=True)
    return root


def _specs(root: Path, env: dict[str, str]) -> dict[str, Any]:
    from cli.up import build_specs

    ports = itertools.count(42000)
    specs = build_specs(load_system(DEFAULT_FILE, environ=env), settings_in(root), 39999, lambda: next(ports))
    return {s.name: s for s in specs}


def _opt(argv: tuple[str, ...], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_up_paper_trades_the_champions_signals_with_cost_aware_mlsignal(champion_root: Path) -> None:
    specs = _specs(champion_root, {"CRYPTOLAKE_SYSTEM__SIGNALS__CASH": "2500"})
    spec = specs["trader-paper-signals"]
    argv = spec.argv
    champion = ModelRegistry(settings_in(champion_root).paths.artifacts_dir / "models" / "localex-1m").champion()
    assert argv[3:5] == ("trade", "signals")  # the Kafka-fed paper trader: it has no live mode
    assert "--live" not in argv and "--cost-aware" in argv
    assert _opt(argv, "--strategy") == "mlsignal" and _opt(argv, "--model-version") == champion.version
    assert _opt(argv, "--exchange") == "localex"  # the venue name the market connector publishes candles under
    assert _opt(argv, "--symbols") == "BTC/USDT" and _opt(argv, "--timeframe") == "1m"
    assert _opt(argv, "--account") == "paper-signals" and _opt(argv, "--cash") == "2500.0"
    assert _opt(argv, "--metrics-port") == str(spec.metrics_port)  # Prometheus scrapes every spec's metrics_port
    assert spec.readiness_url() == f"http://127.0.0.1:{spec.metrics_port}/metrics"
    assert len({s.metrics_port for s in specs.values() if s.metrics_port}) == \
        len([s for s in specs.values() if s.metrics_port])  # its own port
    assert specs["trader-paper-breakout"].argv[3:5] == ("trade", "run")  # the bar traders keep running beside it


def test_no_champion_or_the_switch_off_leaves_the_signal_trader_out(champion_root: Path, tmp_path: Path) -> None:
    assert "trader-paper-signals" not in _specs(tmp_path, {})  # no champion: no signals to trade
    assert "trader-paper-signals" not in _specs(champion_root, {"CRYPTOLAKE_SYSTEM__SIGNALS__ENABLED": "false"})
    nobody_publishes = {"CRYPTOLAKE_SYSTEM__STREAM__SCORE": "false", "CRYPTOLAKE_SYSTEM__STREAM__HOT": "false"}
    assert "trader-paper-signals" not in _specs(champion_root, nobody_publishes)
    only_hot = {"CRYPTOLAKE_SYSTEM__STREAM__SCORE": "false"}  # the hot path alone publishes the signals
    assert "trader-paper-signals" in _specs(champion_root, only_hot)


def test_the_signal_account_may_not_be_a_bar_traders_account() -> None:
    env = {"CRYPTOLAKE_SYSTEM__SIGNALS__ACCOUNT": "paper-breakout"}
    with pytest.raises(ConfigError, match=r"signals\.account='paper-breakout'"):
        load_system(DEFAULT_FILE, environ=env)


def _validation_frames(root: Path, shared_data: Path) -> Any:
    """``pipeline.trading.validation_frames`` over the REAL bars the champion was trained on, with its own
    probabilities on its validation segment (what the lake read returns, without the lake)."""
    registry = ModelRegistry(settings_in(root).paths.artifacts_dir / "models" / "localex-1m")
    entry = registry.champion()
    model = registry.load(entry.version)
    bars = bars_frame(real_candles(shared_data, "localex", N_BARS))
    probs = model.predict(batch_gold(bars).drop(columns=["bar_date"]))[["symbol", "ts", "probability"]]
    vs, ve = (pd.Timestamp(x) for x in entry.metadata["segments"]["valid"])
    frame = bars[bars.open_time < ve].merge(probs.rename(columns={"ts": "open_time"}), on=["symbol", "open_time"],
                                            how="left")
    frame["validation"] = frame.open_time >= vs

    def frames(config: Any, model_version: str, settings: Any) -> tuple[dict[str, pd.DataFrame], bool, str]:
        assert model_version == entry.version and settings.market.exchange == "localex"
        assert settings.market.timeframe == "1m" and tuple(config.symbols) == ("BTC/USDT",)
        return {"BTC/USDT": frame.reset_index(drop=True)}, True, "passed"

    return frames


def test_cost_aware_takes_the_thresholds_the_main_jobs_trade_task_chooses(champion_root: Path, shared_data: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from cli.trade import _cost_aware
    from pipeline import trading

    settings = settings_in(champion_root)
    version = _opt(_specs(champion_root, {})["trader-paper-signals"].argv, "--model-version")
    monkeypatch.setattr(trading, "validation_frames", _validation_frames(champion_root, shared_data))
    params = _cost_aware("mlsignal", {}, "localex", ("BTC/USDT",), "1m", version, settings)
    market = settings.market.model_copy(update={"exchange": "localex", "symbols": ("BTC/USDT",), "timeframe": "1m"})
    scoped = settings.model_copy(update={"market": market})
    chosen = trading.selector_for(trading.trader_config(scoped), version, scoped).record()["ml_thresholds"]
    assert params == {"enter_threshold": chosen["enter"], "exit_threshold": chosen["exit"],
                      "expected_edge_bps": chosen["net_bps_per_bar"]}
    assert list((champion_root / "artifacts" / "strategies").glob("selector-*.json"))  # the main job's cache


def test_cost_aware_refuses_what_it_cannot_choose(champion_root: Path) -> None:
    from cli.trade import _cost_aware

    settings = settings_in(champion_root)
    with pytest.raises(ValueError, match="give --model-version"):
        _cost_aware("mlsignal", {}, "localex", ("BTC/USDT",), "1m", None, settings)
    with pytest.raises(ValueError, match="not 'breakout'"):
        _cost_aware("breakout", {}, "localex", ("BTC/USDT",), "1m", "v1", settings)
    with pytest.raises(ValueError, match="enter_threshold: drop the --param"):
        _cost_aware("mlsignal", {"enter_threshold": 0.7}, "localex", ("BTC/USDT",), "1m", "v1", settings)
