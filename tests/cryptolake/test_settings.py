"""Settings sections that other layers used to own: alternative data and the broker's state folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from cryptolake.bus import broker_state_file
from cryptolake.settings import PathSettings, Settings, settings_table


def test_altdata_section_reads_the_environment_and_rejects_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRYPTOLAKE__ALTDATA__WHALE_THRESHOLD", "250.5")
    monkeypatch.setenv("CRYPTOLAKE__ALTDATA__LANGUAGES", '["en","es"]')
    monkeypatch.setenv("CRYPTOLAKE__ALTDATA__DEDUP_LOOKBACK_DAYS", "3")
    s = Settings().altdata
    assert (s.whale_threshold, s.languages, s.dedup_lookback.days) == (250.5, ("en", "es"), 3)
    with pytest.raises(ValidationError):
        s.whale_threshold = 1.0  # type: ignore[misc]  # frozen
    monkeypatch.setenv("CRYPTOLAKE__ALTDATA__WHALE_THRESHOLD", "-1")
    with pytest.raises(ValidationError, match="whale_threshold"):
        Settings()
    monkeypatch.delenv("CRYPTOLAKE__ALTDATA__WHALE_THRESHOLD")
    monkeypatch.setenv("CRYPTOLAKE__ALTDATA__LANGUAGES", '["English"]')
    with pytest.raises(ValidationError, match="ISO 639-1"):
        Settings()


def test_altdata_fields_are_listed_with_their_environment_variables() -> None:
    rows = {env: default for env, default, _ in settings_table(Settings())}
    assert rows["CRYPTOLAKE__ALTDATA__WHALE_THRESHOLD"] == "100.0"
    assert rows["CRYPTOLAKE__ALTDATA__LANGUAGES"] == "('en',)"
    assert rows["CRYPTOLAKE__ALTDATA__DEDUP_LOOKBACK_DAYS"] == "7"


def test_broker_state_lives_in_the_kafka_folder_of_the_state_dir(tmp_path: Path) -> None:
    settings = Settings().model_copy(update={"paths": PathSettings(state_dir=tmp_path / "s")})
    assert settings.paths.kafka_dir == tmp_path / "s" / "kafka"
    assert broker_state_file(settings) == tmp_path / "s" / "kafka" / "broker.json"
