"""The system config: the committed default loads, environment overrides win, bad values name field and value."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from cryptolake.errors import ConfigError
from cryptolake.system import DEFAULT_FILE, env_overrides, load_system


def test_default_file_loads_the_real_1m_candles() -> None:
    cfg = load_system(DEFAULT_FILE, environ={})
    assert cfg.symbols == ("BTC/USDT",) and cfg.timeframes == ("1m",)
    assert cfg.venues[0].kind == "local" and cfg.venues[0].exchange_id == "binance"
    path = cfg.replay.candles["BTC/USDT"]
    assert path.is_absolute() and path.name == "btc-perp-20211231-20220201_1m.csv.gz" and path.exists()
    assert cfg.strategies[0].kind == "breakout"
    assert cfg.replay.drift_at is None and cfg.replay.drift_scale == 1.0


def test_environment_overrides_nested_and_top_level_fields() -> None:
    env = {"CRYPTOLAKE_SYSTEM__REPLAY__SPEED": "600", "CRYPTOLAKE_SYSTEM__TIMEFRAMES": '["1m", "5m"]',
           "CRYPTOLAKE_SYSTEM__REPLAY__DRIFT_AT": "2022-01-10T00:00:00Z",
           "CRYPTOLAKE_SYSTEM__REPLAY__DRIFT_SCALE": "3", "OTHER": "x"}
    assert env_overrides(env)["replay"]["speed"] == 600
    cfg = load_system(DEFAULT_FILE, environ=env)
    assert cfg.replay.speed == 600.0 and cfg.timeframes == ("1m", "5m")
    assert cfg.replay.drift_at == datetime(2022, 1, 10, tzinfo=UTC) and cfg.replay.drift_scale == 3.0
    assert cfg.replay.candles["BTC/USDT"].exists()  # untouched keys keep the file's values


@pytest.mark.parametrize(("env", "needle"), [
    ({"CRYPTOLAKE_SYSTEM__REPLAY__SPEED": "-1"}, "replay.speed=-1"),
    ({"CRYPTOLAKE_SYSTEM__TIMEFRAMES": '["7m"]'}, "'7m' is not a timeframe"),
    ({"CRYPTOLAKE_SYSTEM__SYMBOLS": '["ETH/USDT"]'}, "'ETH/USDT' has no candle file"),
    ({"CRYPTOLAKE_SYSTEM__SUPERVISOR__CRASH_LOOP_RESTARTS": "0"}, "supervisor.crash_loop_restarts=0"),
    ({"CRYPTOLAKE_SYSTEM__REPLAY__DRIFT_AT": "2022-01-10T00:00:00"}, "has no UTC offset"),
    ({"CRYPTOLAKE_SYSTEM__BOGUS": "1"}, "bogus=1"),
])
def test_bad_values_name_the_field_and_value(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_system(DEFAULT_FILE, environ=env)
    assert needle in str(info.value)


def test_missing_candle_file_and_bad_toml(tmp_path: Path) -> None:
    bad = tmp_path / "s.toml"
    bad.write_text('[replay.candles]\n"BTC/USDT" = "nope/missing.csv.gz"\n')
    with pytest.raises(ConfigError, match=r"nope/missing\.csv\.gz.*does not exist"):
        load_system(bad, environ={})
    bad.write_text("symbols = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_system(bad, environ={})
