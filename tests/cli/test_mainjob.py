"""The main job loads its DAG the way Airflow does (DagBag from the file), never through sys.path."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cryptolake.errors import ConfigError
from cryptolake.settings import Settings, get_settings
from infra.airflow_home import apply_env

pytestmark = pytest.mark.airflow


@pytest.fixture
def airflow_settings() -> Settings:
    settings = get_settings()
    apply_env(settings)  # Airflow reads its environment when first imported
    return settings


def _in(settings: Settings, folder: Path) -> Settings:
    return settings.model_copy(update={"airflow": settings.airflow.model_copy(update={"dags_folder": folder})})


def test_the_market_pipeline_dag_is_parsed_from_its_file_without_touching_sys_path(airflow_settings) -> None:
    import airflow  # noqa: F401  # Airflow's own import adds its config and plugins folders to sys.path

    from cli.mainjob import MAIN_DAG_ID, load_dag

    path_before, modules_before = list(sys.path), set(sys.modules)
    dag = load_dag(MAIN_DAG_ID, airflow_settings)
    assert dag.dag_id == "market_pipeline"
    assert Path(dag.fileloc) == airflow_settings.airflow.dags_folder / "market_pipeline.py"
    assert {"ingest", "land", "train", "trade"} <= {t.task_id for t in dag.tasks}
    assert sys.path == path_before and str(airflow_settings.airflow.dags_folder) not in sys.path
    assert "market_pipeline" not in sys.modules and "market_pipeline" not in modules_before


def test_a_missing_broken_or_foreign_dag_file_is_a_config_error_naming_it(airflow_settings, tmp_path) -> None:
    from cli.mainjob import load_dag

    settings = _in(airflow_settings, tmp_path)
    with pytest.raises(ConfigError, match=r"market_pipeline\.py not found"):
        load_dag("market_pipeline", settings)
    # SYNTHETIC DAG files: one that fails to import, one that defines another DAG id.
    (tmp_path / "broken.py").write_text("import no_such_module_anywhere\n")
    with pytest.raises(ConfigError, match=r"broken\.py does not import.*no_such_module_anywhere"):
        load_dag("broken", settings)
    (tmp_path / "other.py").write_text(
        "from datetime import datetime\nfrom airflow.sdk import dag, task\n\n"
        "@dag(dag_id='something_else', schedule=None, start_date=datetime(2024, 1, 1))\n"
        "def d():\n    @task\n    def t() -> None:\n        pass\n    t()\n\nd()\n"
    )
    with pytest.raises(ConfigError, match=r"defines \['something_else'\], not 'other'"):
        load_dag("other", settings)


def test_timing_line_lists_every_step_and_the_sum() -> None:
    from cli.mainjob import timing_line

    line = timing_line({"ingest": {"seconds": 10.04}, "land": {"seconds": 30.0}, "train": {"seconds": 5.5}}, 20.0, 80.0)
    assert line.startswith("timing: ingest 10.0 s | land 30.0 s | train 5.5 s | steps 45.5 s")
    assert "set-up 20.0 s" in line and "total 80.0 s" in line
