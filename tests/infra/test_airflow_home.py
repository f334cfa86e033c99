"""Airflow home environment (pure) and the migrate marker logic (no airflow subprocess here)."""

from __future__ import annotations

from importlib.metadata import version

from cryptolake.settings import AirflowSettings, Settings
from infra import airflow_home


def _settings(tmp_path) -> Settings:
    af = AirflowSettings(home=tmp_path / "af", dags_folder=tmp_path / "dags")
    return Settings().model_copy(update={"airflow": af})


def test_env_points_airflow_at_home_sqlite_and_dags_without_examples(tmp_path):
    env = airflow_home.airflow_env(_settings(tmp_path))
    assert env["AIRFLOW_HOME"] == str(tmp_path / "af")
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(tmp_path / "dags")
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{tmp_path / 'af' / 'airflow.db'}"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"


def test_apply_env_updates_the_given_mapping_and_creates_home(tmp_path):
    target: dict[str, str] = {}
    airflow_home.apply_env(_settings(tmp_path), target)
    assert target["AIRFLOW_HOME"] == str(tmp_path / "af")
    assert (tmp_path / "af").is_dir()


def test_is_migrated_needs_db_and_marker_of_this_airflow_version(tmp_path):
    s = _settings(tmp_path)
    home = tmp_path / "af"
    home.mkdir()
    assert not airflow_home.is_migrated(s)
    (home / "airflow.db").write_bytes(b"")
    (home / airflow_home.MARKER).write_text("2.0.0")
    assert not airflow_home.is_migrated(s)
    (home / airflow_home.MARKER).write_text(version("apache-airflow"))
    assert airflow_home.is_migrated(s)
    assert airflow_home.migrate(s) is False  # already done: no subprocess
