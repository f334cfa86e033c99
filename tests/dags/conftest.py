"""Airflow needs its environment BEFORE it is imported: set it here, at collection time.

The metadata DB is the project's local one (``<state_dir>/airflow``, migrated once per Airflow
version by ``infra.airflow_home.migrate``). DAG tasks call ``get_settings()``, so the lake and
checkpoint roots are pointed at a temporary folder for the whole test session (never the real lake).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cryptolake.settings import Settings, get_settings
from infra.airflow_home import apply_env, migrate

_TMP = Path(tempfile.mkdtemp(prefix="cryptolake-dags-"))
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)
os.environ.setdefault("CRYPTOLAKE__PATHS__LAKE_ROOT", str(_TMP / "lake"))
os.environ.setdefault("CRYPTOLAKE__PATHS__CHECKPOINT_ROOT", str(_TMP / "checkpoints"))
get_settings.cache_clear()
apply_env(get_settings())

DAGS_FOLDER = get_settings().airflow.dags_folder


@pytest.fixture(scope="session")
def airflow_db() -> Iterator[Settings]:
    """A migrated Airflow metadata DB (no-op when already migrated at this Airflow version)."""
    settings = get_settings()
    migrate(settings)
    yield settings


@pytest.fixture(scope="session")
def dagbag() -> object:
    """Every DAG in dags/, parsed once."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_FOLDER), safe_mode=False)
