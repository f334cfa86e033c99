"""`cryptolake doctor` checks run as functions (no subprocess); the broker check names the fix."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cli import doctor
from cryptolake.settings import Settings, get_settings
from tests.conftest import settings_in


@pytest.fixture
def no_broker_settings(tmp_path) -> Settings:
    return settings_in(tmp_path, own_state=True)


def test_broker_check_fails_with_stack_up_fix_when_stopped(no_broker_settings):
    check = doctor.check_broker(no_broker_settings)
    assert not check.ok
    assert "not running" in check.detail
    assert check.fix == "cryptolake stack up"


def test_airflow_check_fails_when_db_not_migrated(tmp_path, no_broker_settings):
    settings = no_broker_settings.model_copy(
        update={"airflow": no_broker_settings.airflow.model_copy(update={"home": tmp_path / "af"})})
    check = doctor.check_airflow_db(settings)
    assert not check.ok and check.fix == "cryptolake stack up"


def test_fast_checks_pass_on_this_machine(no_broker_settings):
    results = {c.name: c for c in doctor.run_checks(no_broker_settings, skip=("broker", "spark", "airflow"))}
    assert set(results) == {"java", "jars", "duckdb + delta", "torch"}
    assert all(c.ok for c in results.values()), results


def test_java_major_parses_old_and_new_version_strings():
    assert doctor.java_major('openjdk version "17.0.15" 2025-04-15') == 17
    assert doctor.java_major('java version "1.8.0_392"') == 8
    assert doctor.java_major("garbage") is None


def test_doctor_command_prints_table_and_exits_1_when_broker_down(monkeypatch, tmp_path):
    monkeypatch.setenv("CRYPTOLAKE__PATHS__STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("CRYPTOLAKE__PATHS__JARS_DIR", str(Settings().paths.jars_dir))
    get_settings.cache_clear()
    try:
        from cli.main import app

        result = CliRunner().invoke(app, ["doctor", "--skip", "spark", "--skip", "airflow", "--skip", "torch"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1, result.output
    assert "kafka broker" in result.output and "FAIL" in result.output
    assert "cryptolake stack up" in result.output


def test_unknown_check_name_is_refused(no_broker_settings):
    import typer

    with pytest.raises(typer.BadParameter, match="nope"):
        doctor.run_checks(no_broker_settings, skip=("nope",))
