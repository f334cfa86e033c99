"""The local Airflow 3 home: environment, SQLite metadata DB and an idempotent ``airflow db migrate``.

Airflow shares the project's virtual environment (``dag.test()`` runs tasks in-process, one lock
file). Every option is passed as an ``AIRFLOW__SECTION__KEY`` variable so nothing depends on a
hand-edited ``airflow.cfg``; the variables must be in ``os.environ`` before ``airflow`` is
imported (see :func:`apply_env`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import MutableMapping
from importlib.metadata import version
from pathlib import Path

from cryptolake.errors import InfrastructureError
from cryptolake.logs import get_logger
from cryptolake.settings import Settings, get_settings

log = get_logger(__name__)

MARKER = ".cryptolake-migrated"


def db_path(settings: Settings | None = None) -> Path:
    """The SQLite metadata database."""
    return (settings or get_settings()).airflow.home / "airflow.db"


def airflow_env(settings: Settings | None = None) -> dict[str, str]:
    """``AIRFLOW_HOME`` and ``AIRFLOW__*`` variables for the local, single-machine Airflow (pure)."""
    settings = settings or get_settings()
    home = settings.airflow.home
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(settings.airflow.dags_folder),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # Airflow 3 has no SequentialExecutor; LocalExecutor is the local one, and dag.test()
        # runs tasks in-process without any executor.
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__DEFAULT_TIMEZONE": "utc",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__LAZY_LOAD_PLUGINS": "True",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "60",
        "AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES_REGEXP": r"(airflow|cryptolake|spark_jobs|pipeline)\..*",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{db_path(settings)}",
        "AIRFLOW__DATABASE__LOAD_DEFAULT_CONNECTIONS": "False",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__WEBSERVER__EXPOSE_CONFIG": "False",
    }


def apply_env(settings: Settings | None = None, environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Put :func:`airflow_env` into ``environ`` (default ``os.environ``); call before importing airflow."""
    env = airflow_env(settings)
    target = os.environ if environ is None else environ
    target.update(env)
    settings = settings or get_settings()
    settings.airflow.home.mkdir(parents=True, exist_ok=True)
    return env


def airflow_bin() -> Path:
    """The ``airflow`` entry point of the project's virtual environment."""
    path = Path(sys.executable).parent / "airflow"
    if not path.exists():
        raise InfrastructureError(f"no airflow executable at {path}; run `uv sync` in the project")
    return path


def is_migrated(settings: Settings | None = None) -> bool:
    """True if the metadata DB was migrated by this Airflow version (recorded in a marker file)."""
    settings = settings or get_settings()
    marker = settings.airflow.home / MARKER
    return db_path(settings).exists() and marker.exists() and marker.read_text().strip() == version("apache-airflow")


def migrate(settings: Settings | None = None, *, force: bool = False) -> bool:
    """Run ``airflow db migrate`` unless already done at this Airflow version. True if it ran."""
    settings = settings or get_settings()
    if is_migrated(settings) and not force:
        return False
    home = settings.airflow.home
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **airflow_env(settings)}
    t0 = time.monotonic()
    try:
        proc = subprocess.run([str(airflow_bin()), "db", "migrate"], env=env, capture_output=True, text=True,
                              check=False, timeout=600)
    except subprocess.TimeoutExpired as exc:
        raise InfrastructureError(f"`airflow db migrate` timed out after {exc.timeout}s (home {home})") from exc
    if proc.returncode != 0:
        raise InfrastructureError(
            f"`airflow db migrate` failed (home {home}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        )
    (home / MARKER).write_text(version("apache-airflow"))
    log.info("airflow.migrated", extra={"home": str(home), "seconds": round(time.monotonic() - t0, 1)})
    return True


if __name__ == "__main__":
    # ``python -m infra.airflow_home``: the set-up step (idempotent).
    ran = migrate()
    print("airflow db migrate:", "done" if ran else "already migrated")
