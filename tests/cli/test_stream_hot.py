"""`cryptolake stream hot`: its help says why it exists; `up` runs it with the market's champion when switched on."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cryptolake.settings import PROJECT_ROOT, Settings
from cryptolake.system import DEFAULT_FILE, load_system
from models.registry import ModelRegistry
from pipeline.hotpath import bars_frame
from tests.conftest import settings_in
from tests.pipeline.hotproc import train_tiny
from tests.pipeline.streamproc import real_candles


def test_help_says_why_the_hot_path_exists_beside_the_spark_chain() -> None:
    # a child process: the CLI's logging set-up then never holds a test runner's closed stream
    result = subprocess.run([sys.executable, "-m", "cli.main", "stream", "hot", "--help"], capture_output=True,
                            text=True, env={**os.environ, "COLUMNS": "200"}, cwd=PROJECT_ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "Why: the Spark chain (land, silver, gold, score) is the lake's exactly-once record" in text
    assert "batch scorer's signal_id" in text and "dlq.market.ohlcv" in text
    for option in ("--model-version", "--timeframe", "--group-id", "--replay-records", "--metrics-port"):
        assert option in text


@pytest.fixture(scope="module")
def champion_root(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """Artifacts whose localex-1m registry has a promoted tiny LSTM on REAL 1m bars."""
    root = tmp_path_factory.mktemp("hot_up")
    model = train_tiny(bars_frame(real_candles(shared_data, "localex", 900)))
    registry = ModelRegistry(settings_in(root).paths.artifacts_dir / "models" / "localex-1m")
    registry.register(model, promote=True)
    return root


def _specs(root: Path, env: dict[str, str]) -> dict[str, tuple[str, ...]]:
    from cli.up import build_specs

    ports = itertools.count(41000)
    specs = build_specs(load_system(DEFAULT_FILE, environ=env), settings_in(root), 39999, lambda: next(ports))
    return {s.name: s.argv for s in specs}


def test_up_runs_the_hot_path_with_the_markets_champion(champion_root: Path) -> None:
    specs = _specs(champion_root, {})
    hot = specs["hot"]
    registry = ModelRegistry(settings_in(champion_root).paths.artifacts_dir / "models" / "localex-1m")
    assert hot[3:5] == ("stream", "hot")
    assert hot[hot.index("--model-version") + 1] == registry.champion().version
    assert hot[hot.index("--registry-dir") + 1] == str(registry.root)
    assert hot[hot.index("--timeframe") + 1] == "1m" and "--metrics-port" in hot
    assert specs["stream"][3:5] == ("stream", "score")  # the Spark chain keeps running beside it


def test_the_switch_and_a_missing_champion_leave_the_hot_path_out(champion_root: Path, tmp_path: Path) -> None:
    assert "hot" not in _specs(champion_root, {"CRYPTOLAKE_SYSTEM__STREAM__HOT": "false"})
    specs = _specs(tmp_path, {})  # no champion yet: nothing to score
    assert "hot" not in specs and specs["stream"][3:5] == ("stream", "features")


def _stamp(settings: Settings, bars: int, after_close_s: dict[str, float]) -> None:
    """SYNTHETIC stamps: ``bars`` 1-minute bars, each stage ``after_close_s[stage]`` seconds after the close."""
    from datetime import UTC, datetime, timedelta

    import pandas as pd

    from cryptolake.stages import stage_rows
    from trader.stages import DeltaStages

    keys = pd.DataFrame({"exchange": "st", "symbol": "BTC/USDT", "timeframe": "1m",
                         "ts": [datetime(2022, 1, 3, tzinfo=UTC) + timedelta(minutes=i) for i in range(bars)]})
    close = keys["ts"] + timedelta(minutes=1)
    DeltaStages(settings).append(pd.concat([stage_rows(keys, stage, close + timedelta(seconds=s))
                                            for stage, s in after_close_s.items()]))


def test_status_shows_close_to_hot_signal_beside_the_spark_chain(tmp_path: Path) -> None:
    from cli.up import _latency_lines

    settings = settings_in(tmp_path)
    assert _latency_lines(settings) == ["latency    : no bar has reached a signal yet (0 bars stamped)"]
    _stamp(settings, 5, {"ingest": 0.2, "hot_features": 1.0, "hot_signal": 1.2})
    lines = _latency_lines(settings)
    assert lines[0] == "hot path   : bar close -> hot_signal p50 1.20 s, p99 1.20 s over 5 bars"
    assert "ingest->hot_signal p50 1.00 s p99 1.00 s" in lines[1]


def test_status_shows_close_to_order_and_the_hop_from_the_signal_it_answered(tmp_path: Path) -> None:
    from cli.up import _latency_lines

    settings = settings_in(tmp_path)
    _stamp(settings, 4, {"ingest": 0.5, "signal": 3.0, "order": 3.25})
    lines = _latency_lines(settings)
    assert lines[0] == "latency    : bar close -> signal p50 3.00 s, p99 3.00 s over 4 bars"
    assert lines[1] == "trader     : bar close -> order p50 3.25 s, p99 3.25 s over 4 bars"
    assert "signal->order p50 0.25 s p99 0.25 s" in lines[2] and "ingest->order p50 2.75 s" in lines[2]
